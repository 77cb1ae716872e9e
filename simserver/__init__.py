"""Simulated LLM inference engine: an OpenAI-compatible server that models a real engine.

`python -m simserver --help`; the model and its parameters are described in simserver/README.md.
"""
