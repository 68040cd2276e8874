"""The trainer: align a causal LM with judge rewards called over HTTP.

Modules: `config` (the YAML shape), `judge_client` (the HTTP judge client,
shared with evaluation and DPO), `rewards` (judge results to rewards, the
invalid and missing-EOS policies), `ppo_reward` (the seam into TRL's PPO),
`ppo` and `group` (PPO; GRPO and RLOO), `pairs` and `dpo` (offline DPO:
judge-ranked pairs, then TRL's DPOTrainer), `monitor` (metrics, samples),
`checkpoints`, `run` (one run end to end), `cli` (`rlaif train`,
`rlaif dpo pairs`).
"""
