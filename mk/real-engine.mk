# The CPU vLLM engine with a tiny locally built model (issue 10; README.md § Benchmarking real servers).
# Separate venv and everything it writes under .real-engine/ (gitignored); logic in scripts/real_engine.sh.
# REAL_ENGINE_PORT=8011 by default (0 = any free port); REAL_ENGINE_TIMEOUT=300 (s, health wait);
# REAL_ENGINE_OTLP_ENDPOINT=http://127.0.0.1:4318/v1/traces sends vLLM's per-request spans to Goodput's --otlp-listen.
.PHONY: real-engine-setup real-engine-model real-engine-lora real-engine-vlm real-engine real-engine-stop real-engine-status

real-engine-setup:
	@bash scripts/real_engine.sh setup

real-engine-model:
	@bash scripts/real_engine.sh model

real-engine-lora:
	@bash scripts/real_engine.sh lora

real-engine-vlm:
	@bash scripts/real_engine.sh vlm

real-engine:
	@bash scripts/real_engine.sh start

real-engine-stop:
	@bash scripts/real_engine.sh stop

real-engine-status:
	@bash scripts/real_engine.sh status || true
