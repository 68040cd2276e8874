"""The judge server: scores texts against a rubric over HTTP.

Layout, one concept per module: ``protocol`` (request/response schemas),
``serving`` (scoring logic, no HTTP), ``api`` (routes and app factory),
``batcher`` (micro-batching), ``parsing`` (text-mode scores),
``expected_score`` (logprob-mode scores), ``prompting`` (rubric rendering),
``rubrics``, ``config``, ``metrics``, ``errors``, ``validate`` and
``backends/`` (embedding, transformers, openai, vllm).
"""
