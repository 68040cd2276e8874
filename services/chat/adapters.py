"""LoRA adapters on disk: what they are, whether vLLM can serve them.

An adapter folder is what ``peft`` saves: ``adapter_config.json`` and
``adapter_model.safetensors`` (or ``.bin``). :func:`inspect_adapter` reads
both without loading a model, so the service can refuse an adapter before
it costs a model load or fails inside the engine at request time.

vLLM serves LoRA deltas only. It refuses adapters that saved whole modules
(``modules_to_save``, typically ``lm_head`` or ``embed_tokens`` after a
vocabulary change) and DoRA adapters; :func:`vllm_problem` says which rule
an adapter breaks, so the vLLM backend can merge it or refuse it with the
reason. The transformers backend serves all of them.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

from services.chat.errors import AdapterError, UnknownModelError

WHOLE_MODULE_NAMES = ("lm_head", "embed_tokens", "embed_out", "wte", "output")


@dataclass(frozen=True, kw_only=True)
class AdapterInfo:
    """What the service needs to know about one adapter folder."""

    name: str
    path: Path
    rank: int
    alpha: float
    target_modules: tuple[str, ...]
    modules_to_save: tuple[str, ...] = ()
    whole_module_weights: tuple[str, ...] = ()
    use_dora: bool = False
    base_model: str | None = None
    merged: bool = field(default=False, compare=False)


def inspect_adapter(name: str, path: Path | str) -> AdapterInfo:
    """Read ``path``'s adapter config (and weight names) without loading it."""
    folder = Path(path)
    config_file = folder / "adapter_config.json"
    if not config_file.is_file():
        raise AdapterError(
            f"adapter {name!r}: no adapter_config.json in {str(folder)!r}: point "
            "at the folder peft's save_pretrained wrote (the training run dir)"
        )
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise AdapterError(
            f"adapter {name!r}: {str(config_file)!r} is not valid JSON: {exc}"
        ) from exc
    peft_type = str(config.get("peft_type", "")).upper()
    if peft_type != "LORA":
        raise AdapterError(
            f"adapter {name!r} is a {peft_type or 'unknown'} adapter: only LoRA "
            "adapters can be served"
        )
    return AdapterInfo(
        name=name,
        path=folder.resolve(),
        rank=int(config.get("r", 8)),
        alpha=float(config.get("lora_alpha", 8)),
        target_modules=_as_tuple(config.get("target_modules")),
        modules_to_save=_as_tuple(config.get("modules_to_save")),
        whole_module_weights=_whole_module_weights(folder),
        use_dora=bool(config.get("use_dora", False)),
        base_model=config.get("base_model_name_or_path"),
    )


def vllm_problem(info: AdapterInfo) -> str | None:
    """Why vLLM cannot serve ``info`` as a LoRA adapter, or None if it can."""
    if info.modules_to_save or info.whole_module_weights:
        saved = sorted(set(info.modules_to_save) | set(info.whole_module_weights))
        return (
            f"adapter {info.name!r} saves whole modules {saved!r} "
            "(modules_to_save): vLLM applies LoRA deltas only"
        )
    if info.use_dora:
        return f"adapter {info.name!r} is a DoRA adapter: vLLM does not serve DoRA"
    targeted = [m for m in info.target_modules if m in WHOLE_MODULE_NAMES]
    if targeted:
        return (
            f"adapter {info.name!r} puts LoRA on {targeted!r}: vLLM serves LoRA "
            "on the attention and MLP projections only"
        )
    return None


def _as_tuple(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        # peft allows a regex string for target_modules; keep it as one entry.
        return (value,)
    return tuple(str(v) for v in value)  # type: ignore[union-attr]


def _whole_module_weights(folder: Path) -> tuple[str, ...]:
    """Names of whole modules whose weights the adapter file carries.

    peft writes a saved module as ``...lm_head.weight`` without a
    ``lora_`` part; an embedding or head saved for a resized vocabulary
    shows up here even when adapter_config.json does not list it.
    """
    weights = folder / "adapter_model.safetensors"
    if not weights.is_file():
        return ()
    from safetensors import safe_open

    found = set()
    with safe_open(str(weights), framework="pt") as handle:
        for key in handle.keys():
            parts = key.split(".")
            if any(p.startswith("lora_") for p in parts):
                continue
            found.update(p for p in parts if p in WHOLE_MODULE_NAMES)
    return tuple(sorted(found))


class AdapterRegistry:
    """The adapters a backend serves, by model name, with a capacity.

    A name is reserved while its adapter loads, so two concurrent loads of
    one name cannot both succeed, and it disappears from lookups the moment
    an unload starts, so no new request picks an adapter on its way out.
    """

    def __init__(self, base_name: str, max_adapters: int) -> None:
        self.base_name = base_name
        self.max_adapters = max_adapters
        self._adapters: dict[str, AdapterInfo] = {}
        self._reserved: set[str] = set()
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        with self._lock:
            return list(self._adapters)

    def get(self, name: str) -> AdapterInfo | None:
        with self._lock:
            return self._adapters.get(name)

    def all(self) -> list[AdapterInfo]:
        with self._lock:
            return list(self._adapters.values())

    def resolve(self, model: str, *, base_available: bool = True) -> str | None:
        """The adapter name ``model`` selects, None for the base model."""
        if model == self.base_name and base_available:
            return None
        with self._lock:
            if model in self._adapters:
                return model
            known = list(self._adapters)
        raise UnknownModelError(
            model, ([self.base_name] if base_available else []) + known
        )

    def reserve(self, name: str) -> None:
        """Claim ``name`` for a load; refuse duplicates and a full registry."""
        with self._lock:
            if name == self.base_name:
                raise AdapterError(
                    f"adapter name {name!r} is the base model's name: choose another"
                )
            if name in self._adapters or name in self._reserved:
                raise AdapterError(
                    f"adapter {name!r} is already loaded: unload it first or "
                    "choose another name"
                )
            if len(self._adapters) + len(self._reserved) >= self.max_adapters:
                raise AdapterError(
                    f"cannot load adapter {name!r}: {self.max_adapters} adapters "
                    "are loaded (max_loras); unload one or raise max_loras"
                )
            self._reserved.add(name)

    def commit(self, info: AdapterInfo) -> None:
        with self._lock:
            self._reserved.discard(info.name)
            self._adapters[info.name] = info

    def release(self, name: str) -> None:
        """Give up a reservation whose load failed."""
        with self._lock:
            self._reserved.discard(name)

    def remove(self, name: str) -> AdapterInfo:
        with self._lock:
            info = self._adapters.pop(name, None)
            known = list(self._adapters)
        if info is None:
            raise UnknownModelError(name, known)
        return info
