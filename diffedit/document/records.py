"""Generation records: how a layer was made, stored on the layer and saved with the document."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class GenerationRecord:
    """Everything needed to run a task again: task, model, sampler, steps, seed and parameters."""

    task: str
    model: str = ""
    model_hash: str = ""
    sampler: str = ""
    steps: int = 0
    seed: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    version: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GenerationRecord:
        if not isinstance(data, dict) or "task" not in data:
            raise ValueError("a generation record needs at least a 'task' key")
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_parameters_text(self) -> str:
        """The human-readable `parameters` text other diffusion tools write into PNGs.

        Prompt on the first line, the negative prompt on a `Negative prompt:` line, then
        comma-separated `Key: value` settings, as AUTOMATIC1111 and compatible readers expect.
        """
        params = dict(self.params)
        lines = [str(params.pop("prompt", ""))]
        negative = params.pop("negative_prompt", "")
        if negative:
            lines.append(f"Negative prompt: {negative}")
        settings: list[tuple[str, Any]] = [("Steps", self.steps), ("Sampler", self.sampler)]
        if self.seed is not None:
            settings.append(("Seed", self.seed))
        if "guidance_scale" in params:
            settings.append(("CFG scale", params.pop("guidance_scale")))
        if "width" in params and "height" in params:
            settings.append(("Size", f"{params.pop('width')}x{params.pop('height')}"))
        if self.model_hash:
            settings.append(("Model hash", self.model_hash[:10]))
        if self.model:
            settings.append(("Model", self.model))
        settings.append(("Task", self.task))
        settings.extend((k.replace("_", " ").capitalize(), v) for k, v in params.items())
        lines.append(", ".join(f"{k}: {_setting_value(v)}" for k, v in settings))
        return "\n".join(lines)


def _setting_value(value: Any) -> str:
    text = str(value)
    return f'"{text}"' if ("," in text or ":" in text) else text
