"""What a text experiment's config needs beyond the schema, called by ``umia.config.resolve``
(``registry.TASK_CODE``): one view, and a base model that loads here with a context that holds
``dataset.max_tokens`` (transformers is imported only to check a given base model)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from umia.errors import ConfigError


def check_config(cfg: Mapping, load_plugins: bool = True) -> None:
    """What a text experiment needs beyond the schema: one view, a base model that fits (checked
    in the main process only, ``load_plugins``: its jobs may run on offline nodes)."""
    if list(cfg["views"]) != ["identity"]:
        raise ConfigError(
            f"config key 'views': {cfg['views']} but a text experiment has one view; set views: [identity]"
        )
    lm, max_tokens = cfg["lm"], cfg["dataset"]["max_tokens"]
    if lm["base_model"] is not None:
        if load_plugins:  # the main process checks it once; its jobs (maybe offline nodes) do not
            _check_base(str(lm["base_model"]), max_tokens)
        return
    if lm["n_embd"] % lm["n_head"]:
        raise ConfigError(
            f"config key 'lm.n_head': {lm['n_head']} does not divide lm.n_embd={lm['n_embd']}; "
            "choose a divisor (each head is n_embd / n_head wide)"
        )
    if lm["n_positions"] is not None and lm["n_positions"] < max_tokens:
        raise ConfigError(
            f"config key 'lm.n_positions': {lm['n_positions']} is less than dataset.max_tokens={max_tokens}; "
            "raise it or set it to null (= max_tokens)"
        )


def _check_base(name: str, max_tokens: int) -> None:
    """``lm.base_model`` must be a causal LM with its tokenizer, loadable here (a folder written by
    ``save_pretrained``, or a hub name in the local cache or reachable), whose context holds
    ``dataset.max_tokens`` tokens (reviews are cut to max_tokens, never to the context)."""
    from transformers import AutoConfig, AutoTokenizer
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    key = "config key 'lm.base_model'"
    folder = Path(name).expanduser()
    local = folder.is_dir()
    if not local and (folder.exists() or name.startswith(("/", ".", "~"))):
        raise ConfigError(
            f"{key}: {name} is not a folder; point it at a folder written by save_pretrained (model and "
            "tokenizer) or at a hub name"
        )
    where = str(folder) if local else name
    try:
        config = AutoConfig.from_pretrained(where)
    except (OSError, ValueError) as e:
        if local:
            raise ConfigError(
                f"{key}: {name} has no model config.json ({str(e).splitlines()[0]}); write the model into it "
                "with model.save_pretrained(folder)"
            ) from None
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(
            f"{key}: {name!r} is not a local folder and the hub cannot give it here (no network, or no such "
            f"model: {why}); save it on a machine that can reach the hub (AutoModelForCausalLM and "
            "AutoTokenizer .from_pretrained, then .save_pretrained(folder)) and point lm.base_model at that folder"
        ) from None
    # AutoModelForCausalLM picks its class by model type; an encoder (BERT, RoBERTa) has a causal
    # class too, but only as a decoder (is_decoder), which its pretrained weights never were
    heads = getattr(config, "architectures", None) or []
    encoder = config.model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES and not getattr(config, "is_decoder", False)
    if config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES or encoder:
        raise ConfigError(
            f"{key}: {name} is a {config.model_type!r} model ({', '.join(heads) or 'no head named'}), not a "
            "causal language model; choose one that AutoModelForCausalLM loads (GPT-2, Pythia, OPT, Llama, ...)"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(where)
    except (OSError, ValueError, TypeError, ImportError):  # ImportError: a tokenizer library missing
        tokenizer = []
    if len(tokenizer) < 2:  # transformers may make an empty one from no files
        raise ConfigError(
            f"{key}: {name} has no tokenizer that loads; save the model's tokenizer into it with "
            "tokenizer.save_pretrained(folder)"
        )
    context = next(
        (getattr(config, k) for k in ("max_position_embeddings", "n_positions", "n_ctx") if getattr(config, k, None)),
        None,
    )
    if context is not None and max_tokens > context:
        raise ConfigError(
            f"config key 'dataset.max_tokens': {max_tokens} tokens is longer than the context of {name} "
            f"({context} tokens); set dataset.max_tokens to at most {context}"
        )
