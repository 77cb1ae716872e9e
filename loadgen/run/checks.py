"""Everything a user can get wrong, checked before any run folder exists (CLI and web form alike).

A mistake is one line naming the option and what is expected (core/errors.py): on the command
line the process ends with it (exit 2), in the web UI the start is refused with it.
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

from core.durations import parse_duration_s
from core.errors import OptionError, SloError, exit_with
from core.slo import Slo, parse_slo
from loadgen.output.runfolder import check_results_dir
from loadgen.run import serverfacts, target, tenants
from loadgen.run.fit import Fit, check_fit
from loadgen.tokencount import load as load_tokenizer
from loadgen.transport import headers as extra_headers
from loadgen.transport.apis import APIS, SDK_APIS, Api, chosen
from loadgen.transport.ids import request_id_header, session_header
from loadgen.transport.urls import api_path_problem, models_path, openai_base, safe_url, sdk_tail
from shapes import build_schedule, open_loop
from workloads.conversation import Workload
from workloads.images import image_kinds
from workloads.mix import Mix
from workloads.models import ModelsError, parse_models

log = logging.getLogger("goodput")
ADAPTER_APART = (
    "sglang",
    "tgi",
)  # routes that name a LoRA adapter in a field of its own (apis/base.py Prompt)


class Checked(NamedTuple):
    """What the checks found: the SLO, the model to use, and how each dataset fits the server's
    context (empty when the target was not asked or lists no context length)."""

    slo: Slo
    model: str
    fits: list[Fit]


def validate(environment: Any, check_target: bool) -> Checked:
    """Command line: a mistake ends the process with one line."""
    try:
        return check_options(environment, check_target)
    except (SloError, OptionError, target.TargetError) as e:
        exit_with(str(e))


def check_options(environment: Any, check_target: bool) -> Checked:
    """All options (and the target, when asked): the SLO, the model to use and the workload's fit in
    its context, or a GoodputError."""
    opts = environment.parsed_options
    target.check_credentials(environment.host or "", opts.api_key_env)
    try:
        slo = parse_slo(opts.slo)
    except SloError as e:
        raise OptionError(f"--slo: {e}") from None
    mix = tenants.check(opts, slo)
    if parse_duration_s(opts.request_timeout, "--request-timeout") <= 0:
        raise OptionError(f"--request-timeout: '{opts.request_timeout}' must be positive")
    parse_duration_s(opts.think_time, "--think-time")
    id_header = request_id_header(opts.request_id_header)
    headers = extra_headers.parse(opts.header, id_header)
    extra_headers.check_set(headers)
    if (sh := session_header(getattr(opts, "session_header", "none"))) is not None:
        taken = [n for n in [id_header or "", *(n for n, _ in headers)] if n.lower() == sh.lower()]
        if taken:
            raise OptionError(
                f"--session-header: {sh} is already sent (--request-id-header or --header); name another"
            )
    api = check_api(opts, slo)
    named = check_models(opts, mix, api)
    if getattr(opts, "tokenizer", ""):
        load_tokenizer(opts.tokenizer)
    if opts.max_tokens <= 0:
        raise OptionError(f"--max-tokens: {opts.max_tokens} must be a positive number of tokens")
    build_schedule(opts)
    from workloads import WorkloadError, open_workload

    try:
        stream = open_workload(opts.dataset, seed=opts.seed, order=opts.order)
    except WorkloadError as e:
        raise OptionError(f"--dataset: {e}") from None
    for spec in dict.fromkeys([c.dataset for c in mix.classes] if mix is not None else [opts.dataset]):
        loaded = stream.workload if spec == opts.dataset else open_workload(spec, seed=opts.seed).workload
        check_images(spec, loaded, APIS["completions"] if opts.llm_user == "completions" else api)
    check_results_dir(opts.results_dir)  # last of the local checks: it may create the folder
    if not check_target:
        return Checked(slo, opts.model, [])
    asked = (opts.api_key_env, opts.client, extra_headers.resolve(headers))
    served = target.check(environment.host, opts.model, *asked, models=models_path(api.path, api.sdk))
    check_served(named, served, environment.host, api)
    ask = serverfacts.Asker(environment.host, *asked)
    context = serverfacts.context_length(served.card, ask) if opts.shape != "trace" else None
    fits = []
    if context is not None:  # (a trace sets each request's lengths itself)
        count = serverfacts.token_counter(ask, served.model)
        datasets = [c.dataset for c in mix.classes] if mix is not None else [opts.dataset]
        for spec in dict.fromkeys(datasets):
            workload = (
                stream.workload if spec == opts.dataset else open_workload(spec, seed=opts.seed).workload
            )
            fits.append(check_fit(spec, workload, opts.max_tokens, context, count))
    return Checked(slo, served.model, fits)


def check_models(opts: Any, mix: Mix | None, api: Api) -> dict[str, str]:
    """`--models` and the mix classes' `model=`: each model a request may name → the option naming it."""
    try:
        models = parse_models(getattr(opts, "models", "") or "")
    except ModelsError as e:
        raise OptionError(str(e)) from None
    named = dict.fromkeys(models.names if models is not None else (), "--models")
    for c in mix.classes if mix is not None else ():
        if c.model:
            named.setdefault(c.model, f"--mix: class '{c.name}'")
    if named and api.name == "llamacpp":
        where = next(iter(named.values()))
        raise OptionError(
            f"{where}: llama-server's /completion names no model (it picks LoRA adapters by id in its `lora` "
            "field); use --api chat, or one model"
        )
    return named


def check_served(named: dict[str, str], served: target.Served, host: str, api: Api) -> None:
    """Each model a request names is in the target's list, where its route names the model (`model`):
    vLLM lists its LoRA adapters beside the base model; SGLang's OpenAI routes also take `BASE:ADAPTER`
    (a served base, then the adapter: not every release lists its adapters); TGI's adapters and
    SGLang's `lora_path` are not checked (the list does not hold them)."""
    if not served.ids or api.name in ADAPTER_APART:
        return
    for name, where in named.items():
        base = name.rpartition(":")[0] if api.name != "ollama" else ""  # Ollama's `llama3:8b` is a tag
        if name not in served.ids and f"{name}:latest" not in served.ids and base not in served.ids:
            raise OptionError(
                f"{where}: model '{name}' is not served by {safe_url(host)} (it serves: {', '.join(served.ids)})"
            )


def check_images(spec: str, workload: Workload, api: Api) -> None:
    """A workload with images goes only to a route that takes them, in the URL kinds it holds: a text
    route would get the text alone — another workload than the one asked for, timed as if it were it."""
    kinds = image_kinds(workload.conversations)
    if not kinds:
        return
    if not api.images:
        raise OptionError(
            f"--dataset {spec}: the workload has images and --api {api.name} ({api.server}'s route) takes text "
            f"only; use --api chat, responses, messages or ollama"
        )
    if refused := [k for k in kinds if k not in api.images]:
        raise OptionError(
            f"--dataset {spec}: {kinds[refused[0]]} images are remote URLs and {api.server}'s route takes "
            f"inline (base64 data URL) images only; use images made inline, or --api chat"
        )


def check_api(opts: Any, slo: Slo) -> Api:
    """`--api` (or its alias `--endpoint`), whether the transport can speak it, and whether the SLO's
    TTFO can be measured on it."""
    path = getattr(opts, "api_path", "") or ""
    if problem := api_path_problem(path):
        raise OptionError(f"--api-path: '{path}' {problem}")
    try:
        api = chosen(opts.api, opts.endpoint, path)
    except ValueError as e:
        raise OptionError(str(e)) from None
    if opts.client == "openai" and api.sdk is None:
        raise OptionError(
            f"--api {api.name}: the openai SDK (--client openai) speaks only {', '.join(SDK_APIS)}; "
            f"{api.server}'s native route needs --client raw"
        )
    if opts.client == "openai" and path and openai_base(path, api.sdk) is None:
        raise OptionError(
            f"--api-path: the openai SDK (--client openai) appends {sdk_tail(api.sdk or '')} to its base URL, "
            f"and '{path}' does not end so; use --client raw"
        )
    if not api.ignore_eos and (opts.ignore_eos or getattr(opts, "shape", "") == "trace"):
        asked = "a trace's output lengths" if getattr(opts, "shape", "") == "trace" else "--ignore-eos"
        log.warning(
            "goodput: %s cannot be kept on --api %s: %s's route has no field to generate past the end of "
            "sequence, so an answer may stop before its cap and output lengths vary",
            asked, api.name, api.server,
        )  # fmt: skip
    if not api.splits_reasoning and (
        slo.ttfo_s is not None or any(c.metric == "ttfo" for c in slo.percentiles)
    ):
        raise OptionError(
            f"--slo: --api {api.name} streams reasoning as plain text, so TTFO (the first answer token) "
            "cannot be told from TTFT there; use ttft=, or an API that separates reasoning (chat, responses, sglang)"
        )
    return api


def choose_user_class(
    environment: Any, user_classes: dict[str, type], mix: Mix | None = None, made: dict | None = None
) -> None:
    """Run only the selected user class (Locust would otherwise mix all of them by weight); with a
    closed-loop `mix`, one weighted class per tenant (loadgen/run/tenants.py; `made` caches them)."""
    opts = environment.parsed_options
    name = opts.llm_user
    if name == "auto" and open_loop(opts):
        name = "rate"  # --rate, sweep, trace, rate stages: the open-loop user (users/rate.py)
    if name == "auto":
        from workloads import open_workload

        name = "agent" if open_workload(opts.dataset, seed=opts.seed).multi_turn else "chat"
        if name == "chat" and chosen(opts.api, opts.endpoint).name == "completions":
            name = "completions"
    if mix is not None and name != "rate":
        environment.user_classes = tenants.user_classes(mix, user_classes, opts, {} if made is None else made)
        return
    environment.user_classes = [user_classes[name]]
