# llama.cpp's own server (llama-server, C++) with a tiny locally written GGUF (README.md § Benchmarking real servers).
# Built from the llama.cpp tree vendored in the llama-cpp-python sdist (pin: requirements-llamacpp.txt);
# everything it writes goes under .llamacpp/ (gitignored); logic in scripts/llamacpp.sh.
# LLAMACPP_PORT=8012 by default (0 = any free port); LLAMACPP_TIMEOUT=120 (s, health wait).
.PHONY: llamacpp-setup llamacpp-model llamacpp-mmproj llamacpp llamacpp-stop llamacpp-status

llamacpp-setup:
	@bash scripts/llamacpp.sh setup

# The model is written by the suite's .venv (numpy) with the vendored gguf-py.
llamacpp-model: setup llamacpp-setup
	@bash scripts/llamacpp.sh model

# The image projector (--mmproj) for the tiny model: its width is read from the model.
llamacpp-mmproj: llamacpp-model
	@bash scripts/llamacpp.sh mmproj

llamacpp: setup
	@bash scripts/llamacpp.sh start

llamacpp-stop:
	@bash scripts/llamacpp.sh stop

llamacpp-status:
	@bash scripts/llamacpp.sh status || true
