"""The ChatML chat template both tiny test models carry (vLLM's and llama.cpp's).

One template, so that the two real engines render a conversation the same way and a prompt's
token count compares between them. Content may be a string, a list of parts (only text parts are
rendered) or empty (assistant turns that only carry tool calls); tool calls are rendered as JSON.
Imported by scripts/build_tiny_model.py and scripts/build_tiny_gguf.py, which run from scripts/.
"""

IM_START, IM_END = "<|im_start|>", "<|im_end|>"

_BODY = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% elif message['content'] %}{% for part in message['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{% if message['tool_calls'] is defined and message['tool_calls'] %}"
    "{{ message['tool_calls'] | tojson }}{% endif %}"
    "{{ '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def chat_template(with_bos: bool) -> str:
    """The template; `with_bos` puts the tokenizer's BOS first (the HF tokenizer does not add it itself)."""
    return ("{{ bos_token }}" if with_bos else "") + _BODY
