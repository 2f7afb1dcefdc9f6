"""A preallocated KV cache for decoding at a fixed shape: one (B, H_kv, capacity, head_dim) key and value tensor per
decoder layer, written in place at given slots, with the attention masks that go with it.

transformers' decoder layers call ``cache.update(keys, values, layer_idx, ...)`` and attend over what it returns;
:class:`KVBuffer` answers with its whole preallocated tensors, and the masks built here (:func:`step_mask`) hide the
slots not written yet and the padding. Every tensor keeps its address for the buffer's lifetime, so a decoding step
over it can be captured once in a CUDA graph and replayed (see :mod:`.decoding`).

Layers may hold different lengths for a while (a video context pruned after layer K keeps the full prefix in the
first K layers until the question is added, see :mod:`.video_context`): each layer has its own length and the
mask of each layer is built from that layer's valid slots.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["KVBuffer", "step_mask"]


class KVBuffer:
    """Per-layer key/value tensors of a fixed capacity, written in place, the layers in one or two groups of equal
    length.

    Args:
        num_layers: decoder layers.
        batch, kv_heads, head_dim: the cache's shape per layer, ``(batch, kv_heads, capacity, head_dim)``.
        capacity: positions each layer can hold.
        dtype, device: of the keys and values.
        split: 0: one group; K >= 1: layers ``0..K-1`` and ``K..`` are two groups that may hold different lengths
            until :meth:`keep` brings the first group in line with the second.

    Attributes:
        keys, values: per layer, (B, H_kv, capacity, head_dim), zero where never written.
        group_of: per layer, its group.
        valid: per group, (B, capacity) bool, True at the slots holding a real (not padding) token.
        lengths: per group, how many slots are written (the next write goes to slot ``lengths[group]``).
        slots: per group, the (S,) int64 slots the next ``update`` writes (set by :meth:`set_step`).
    """

    def __init__(
        self,
        num_layers: int,
        batch: int,
        kv_heads: int,
        head_dim: int,
        capacity: int,
        dtype: torch.dtype,
        device: torch.device,
        split: int = 0,
    ) -> None:
        if not 0 <= split < num_layers:
            raise ValueError(f"split must be in [0, {num_layers}); got {split}")
        shape = (batch, kv_heads, capacity, head_dim)
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        groups = 2 if split else 1
        self.group_of = [int(split > 0 and layer >= split) for layer in range(num_layers)]
        self.valid = [torch.zeros(batch, capacity, dtype=torch.bool, device=device) for _ in range(groups)]
        self.lengths = [0] * groups
        self.slots = [torch.zeros(1, dtype=torch.long, device=device) for _ in range(groups)]
        self.capacity, self.batch = capacity, batch

    @property
    def num_layers(self) -> int:
        return len(self.keys)

    @property
    def device(self) -> torch.device:
        return self.keys[0].device

    def layers_of(self, group: int) -> list[int]:
        return [layer for layer, owner in enumerate(self.group_of) if owner == group]

    # -- what transformers' attention calls -------------------------------------------------------------------

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write (B, H_kv, S, head_dim) keys and values at the slots of layer ``layer_idx``'s group; return the
        layer's whole key and value tensors (the masks hide the unwritten slots)."""
        slots = self.slots[self.group_of[layer_idx]]
        keys, values = self.keys[layer_idx], self.values[layer_idx]
        keys.index_copy_(2, slots, key_states.to(keys.dtype))
        values.index_copy_(2, slots, value_states.to(values.dtype))
        return keys, values

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.lengths[self.group_of[layer_idx]]

    # -- filling and stepping ---------------------------------------------------------------------------------

    def load(self, layer: int, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Put (B or 1, H_kv, L, head_dim) cached keys/values at the front of ``layer`` (a batch of 1 is repeated
        over the buffer's rows); the layer's group must be given the same length with :meth:`set_valid`."""
        length = keys.shape[-2]
        if length > self.capacity:
            raise ValueError(f"{length} cached positions do not fit a buffer of {self.capacity}")
        self.keys[layer][:, :, :length].copy_(keys)
        self.values[layer][:, :, :length].copy_(values)

    def set_valid(self, group: int, valid: torch.Tensor) -> None:
        """(B or 1, L) flags of the L slots loaded into ``group``'s layers (False: padding)."""
        length = valid.shape[-1]
        self.valid[group].zero_()
        self.valid[group][:, :length].copy_(valid.to(torch.bool))
        self.lengths[group] = length

    def set_step(self, new_valid: torch.Tensor) -> None:
        """Prepare a step of S new tokens per row: every group writes at its next S slots; (B, S) ``new_valid``
        marks which of them are real tokens (False: padding inside the step)."""
        steps = new_valid.shape[1]
        for group, start in enumerate(self.lengths):
            if start + steps > self.capacity:
                raise ValueError(f"the KV buffer of {self.capacity} positions is full")
            self.slots[group] = torch.arange(start, start + steps, device=self.device)
            self.valid[group][:, start : start + steps] = new_valid
            self.lengths[group] = start + steps

    def keep(self, index: torch.Tensor) -> None:
        """Keep only the slots ``index`` ((L',) int64, ascending) of group 0's layers, moved to the front in order;
        they must then hold what group 1 holds, and the buffer becomes one group."""
        if len(self.lengths) != 2:
            raise ValueError("keep() joins the two groups of a split buffer; this buffer has one")
        index = index.to(self.device)
        length = int(index.numel())
        if length != self.lengths[1]:
            raise ValueError(f"keeping {length} slots of the first layers, but the later layers hold {self.lengths[1]}")
        for layer in self.layers_of(0):
            for tensor in (self.keys[layer], self.values[layer]):
                tensor[:, :, :length] = tensor.index_select(2, index)
        self.group_of = [0] * self.num_layers
        self.valid, self.lengths, self.slots = self.valid[1:], self.lengths[1:], self.slots[1:]

    def masks(self, steps: int, dtype: torch.dtype) -> list[torch.Tensor]:
        """Per group, the (B, 1, steps, capacity) additive mask of the last :meth:`set_step`."""
        return [step_mask(valid, length - steps, steps, dtype) for valid, length in zip(self.valid, self.lengths)]


def step_mask(valid: torch.Tensor, offset: int, steps: int, dtype: torch.dtype) -> torch.Tensor:
    """The additive attention mask of ``steps`` new tokens written at slots ``offset..offset+steps-1``.

    Args:
        valid: (B, C) bool, True at the slots holding real tokens (the new ones included).
        offset: the first new token's slot.
        steps: new tokens per row.
        dtype: of the mask (the model's).

    Returns:
        (B, 1, steps, C): 0 where new token ``i`` may attend to slot ``j`` (``valid`` and ``j <= offset + i``), the
        dtype's lowest value elsewhere.
    """
    capacity = valid.shape[1]
    slots = torch.arange(capacity, device=valid.device)
    causal = slots[None, :] <= (offset + torch.arange(steps, device=valid.device))[:, None]
    allowed = valid[:, None, :] & causal[None]
    mask = torch.zeros(allowed.shape, dtype=dtype, device=valid.device)
    return mask.masked_fill_(~allowed, torch.finfo(dtype).min)[:, None]
