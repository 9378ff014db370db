# Type hints for moert's public API (the implementation is __init__.py; checked by mypy under ctest).
import enum
import os
from types import TracebackType
from typing import (Any, Callable, Dict, Iterator, List, Literal, Mapping, NamedTuple, Optional, Sequence, Type,
                    Tuple, TypeVar, Union)

import numpy as np
import numpy.typing as npt

from ._errors import (CancelledError as CancelledError, DeviceError as DeviceError, Error as Error,
                      FormatError as FormatError, GenerationError as GenerationError,
                      InternalError as InternalError, InvalidArgumentError as InvalidArgumentError,
                      IoError as IoError, OutOfMemoryError as OutOfMemoryError, TimeoutError as TimeoutError,
                      UnsupportedError as UnsupportedError)

__version__: str
API_VERSION: int

def api_version() -> int: ...

class FinishReason(enum.IntEnum):
    NONE = 0
    LENGTH = 1
    STOP = 2
    EOS = 3
    CANCELLED = 4
    ERROR = 5

class TokenLogprobs(NamedTuple):
    logprob: float
    top: List[Tuple[int, float]]

class Token(NamedTuple):
    id: int
    text: str
    finish_reason: FinishReason
    logprobs: Optional[TokenLogprobs] = ...

class Usage(NamedTuple):
    prompt_tokens: int
    generated_tokens: int
    time_to_first_token_s: float
    tokens_per_second: float
    cached_prompt_tokens: int
    decode_forwards: int
    draft_tokens: int
    accepted_drafts: int

_H = TypeVar("_H", bound="_Handle")
# progress: True for a bar on stderr, or a callable(fraction, stage) returning True to cancel.
_Progress = Union[bool, Callable[[float, str], Optional[bool]], None]
_Prompt = Union[str, Sequence[int]]
_Messages = Union[str, Sequence[Mapping[str, Any]], Mapping[str, Any]]  # JSON text, messages, or {"messages": ..., "tools": ...}
# A KV image (Session.export's bytes; any bytes-like object is accepted).
_Bytes = Union[bytes, bytearray, memoryview]

class _Handle:
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    def __enter__(self: _H) -> _H: ...
    # Literal[False]: closing never swallows an exception (so code after a `with` is reachable for mypy).
    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> Literal[False]: ...

def load(path: Union[str, "os.PathLike[str]"], *, threads: Optional[int] = ..., device: Optional[str] = ...,
         activations: Optional[str] = ..., kv_cache_bytes: Optional[int] = ..., max_batch: Optional[int] = ...,
         attention: Optional[str] = ..., mtp: Optional[bool] = ..., batch_invariant: Optional[bool] = ...,
         ep_size: Optional[int] = ..., ep_transport: Optional[str] = ..., ep_redundant: Optional[int] = ...,
         eplb_interval: Optional[int] = ..., ep_overlap: Union[bool, int, None] = ...,
         ep_max_ranks_per_token: Optional[int] = ..., ep_timeout_ms: Optional[int] = ...,
         check_weights: Optional[bool] = ..., prefix_cache: Union[bool, int, None] = ...,
         speculative: Optional[Literal["auto", "on", "off"]] = ..., draft_tokens: Optional[int] = ...,
         cuda_graphs: Optional[bool] = ..., kv_cache_dtype: Optional[Literal["auto", "fp32", "bf16"]] = ...,
         activation_dtype: Optional[Literal["auto", "fp32", "bf16"]] = ...,
         progress: _Progress = ...) -> "Model": ...

class Model(_Handle):
    @classmethod
    def load(cls, path: Union[str, "os.PathLike[str]"], *, threads: Optional[int] = ...,
             device: Optional[str] = ..., activations: Optional[str] = ..., kv_cache_bytes: Optional[int] = ...,
             max_batch: Optional[int] = ..., attention: Optional[str] = ..., mtp: Optional[bool] = ...,
             batch_invariant: Optional[bool] = ..., ep_size: Optional[int] = ..., ep_transport: Optional[str] = ...,
             ep_redundant: Optional[int] = ..., eplb_interval: Optional[int] = ...,
             ep_overlap: Union[bool, int, None] = ..., ep_max_ranks_per_token: Optional[int] = ...,
             ep_timeout_ms: Optional[int] = ..., check_weights: Optional[bool] = ...,
             prefix_cache: Union[bool, int, None] = ..., speculative: Optional[Literal["auto", "on", "off"]] = ...,
             draft_tokens: Optional[int] = ..., cuda_graphs: Optional[bool] = ...,
             kv_cache_dtype: Optional[Literal["auto", "fp32", "bf16"]] = ...,
             activation_dtype: Optional[Literal["auto", "fp32", "bf16"]] = ...,
             progress: _Progress = ...) -> "Model": ...
    def info(self, key: str) -> int: ...
    @property
    def vocab_size(self) -> int: ...
    @property
    def context_length(self) -> int: ...
    @property
    def bos_token_id(self) -> int: ...
    @property
    def eos_token_id(self) -> int: ...
    @property
    def config(self) -> Dict[str, Any]: ...
    @property
    def tokenizer(self) -> "Tokenizer": ...
    def logits(self, tokens: Sequence[int]) -> npt.NDArray[np.float32]: ...
    def session(self) -> "Session": ...
    def import_session(self, data: _Bytes) -> "Session": ...
    def generate_resume(self, data: _Bytes, *, max_tokens: Optional[int] = ..., temperature: Optional[float] = ...,
                        top_k: Optional[int] = ..., top_p: Optional[float] = ..., min_p: Optional[float] = ...,
                        repetition_penalty: Optional[float] = ..., presence_penalty: Optional[float] = ..., frequency_penalty: Optional[float] = ...,
                        seed: Optional[int] = ..., stop: Union[str, Sequence[str], None] = ...,
                        stop_token_ids: Optional[Sequence[int]] = ...,
                        ignore_eos: Optional[bool] = ...,
                 logprobs: Optional[int] = ..., logit_bias: Optional[Mapping[int, float]] = ...) -> "Stream": ...
    def generate(self, prompt: _Prompt, *, max_tokens: Optional[int] = ..., temperature: Optional[float] = ...,
                 top_k: Optional[int] = ..., top_p: Optional[float] = ..., min_p: Optional[float] = ...,
                 repetition_penalty: Optional[float] = ..., presence_penalty: Optional[float] = ..., frequency_penalty: Optional[float] = ...,
                 seed: Optional[int] = ..., stop: Union[str, Sequence[str], None] = ...,
                 stop_token_ids: Optional[Sequence[int]] = ..., ignore_eos: Optional[bool] = ...,
                 logprobs: Optional[int] = ..., logit_bias: Optional[Mapping[int, float]] = ...) -> "Stream": ...
    def chat(self, messages: _Messages, add_generation_prompt: bool = ..., *, max_tokens: Optional[int] = ...,
             temperature: Optional[float] = ..., top_k: Optional[int] = ..., top_p: Optional[float] = ...,
             min_p: Optional[float] = ..., repetition_penalty: Optional[float] = ...,
             presence_penalty: Optional[float] = ..., frequency_penalty: Optional[float] = ..., seed: Optional[int] = ...,
             stop: Union[str, Sequence[str], None] = ..., stop_token_ids: Optional[Sequence[int]] = ...,
             ignore_eos: Optional[bool] = ...,
                 logprobs: Optional[int] = ..., logit_bias: Optional[Mapping[int, float]] = ...) -> "Stream": ...
    def complete(self, prompt: _Prompt, *, max_tokens: Optional[int] = ..., temperature: Optional[float] = ...,
                 top_k: Optional[int] = ..., top_p: Optional[float] = ..., min_p: Optional[float] = ...,
                 repetition_penalty: Optional[float] = ..., presence_penalty: Optional[float] = ..., frequency_penalty: Optional[float] = ...,
                 seed: Optional[int] = ..., stop: Union[str, Sequence[str], None] = ...,
                 stop_token_ids: Optional[Sequence[int]] = ..., ignore_eos: Optional[bool] = ...,
                 logprobs: Optional[int] = ..., logit_bias: Optional[Mapping[int, float]] = ...) -> str: ...

class Tokenizer(_Handle):
    @classmethod
    def load(cls, tokenizer_json: Union[str, "os.PathLike[str]"],
             config: Union[str, "os.PathLike[str]", None] = ...) -> "Tokenizer": ...
    def info(self, key: str) -> int: ...
    def encode(self, text: str, add_bos: Optional[bool] = ..., parse_special: bool = ...) -> List[int]: ...
    def decode(self, ids: Sequence[int], skip_special: bool = ...) -> str: ...
    def apply_chat_template(self, messages: _Messages, add_generation_prompt: bool = ...,
                            tools: Optional[Sequence[Mapping[str, Any]]] = ...,
                            documents: Optional[Sequence[Mapping[str, Any]]] = ..., **variables: Any) -> str: ...

class Session(_Handle):
    def eval(self, tokens: Sequence[int], all_logits: bool = ...) -> npt.NDArray[np.float32]: ...
    def __len__(self) -> int: ...
    def truncate(self, length: int) -> None: ...
    def export(self) -> bytes: ...

class Stream(_Handle):
    finish_reason: FinishReason
    tokens: List[int]
    def next(self, timeout: Optional[float] = ...) -> Token: ...
    def __iter__(self) -> Iterator[Token]: ...
    def text_chunks(self) -> Iterator[str]: ...
    def text(self) -> str: ...
    def token_ids(self) -> List[int]: ...
    def cancel(self) -> None: ...
    @property
    def usage(self) -> Usage: ...
    def counter(self, key: str) -> int: ...
    @property
    def seed(self) -> int: ...
    @property
    def sampled(self) -> bool: ...
    @property
    def error(self) -> str: ...

