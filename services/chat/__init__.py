"""OpenAI-compatible chat service for the base model and its LoRA adapters.

Laid out like vLLM's entrypoints: ``protocol`` (request and response
schemas), ``serving`` (the behaviour, no HTTP), ``api`` (routes and the app
factory), ``backends`` (transformers + peft on CPU, vLLM on GPU),
``adapters`` (reading adapter folders, what vLLM can serve), ``merge``
(``rlaif chat merge``), ``cli`` (``rlaif chat serve | merge``) and ``smoke``
(start, ask once, stop: the demo's last stage).
"""
