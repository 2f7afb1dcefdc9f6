"""The preallocated KV buffer: writes at the next slots, masks that hide padding, unwritten slots and the future,
the two layer groups of a context pruned after layer K, and the decoding helpers around it."""

import pytest
import torch

from divprune_video.models.decoding import capacity_for, resolve_decode_mode
from divprune_video.models.kv_buffer import KVBuffer, step_mask

MIN = torch.finfo(torch.float32).min


def test_step_mask_hides_padding_unwritten_slots_and_the_future():
    valid = torch.tensor([[True, True, False, True, True, False], [False, True, True, True, True, False]])
    mask = step_mask(valid, offset=3, steps=2, dtype=torch.float32)
    assert mask.shape == (2, 1, 2, 6)
    allowed = mask[:, 0] == 0
    assert allowed[0].tolist() == [[True, True, False, True, False, False], [True, True, False, True, True, False]]
    assert allowed[1].tolist() == [[False, True, True, True, False, False], [False, True, True, True, True, False]]
    assert (mask[~(mask == 0)] == MIN).all()


def test_update_writes_at_the_step_slots_and_returns_the_whole_layer():
    buffer = KVBuffer(
        num_layers=2, batch=1, kv_heads=1, head_dim=2, capacity=4, dtype=torch.float32, device=torch.device("cpu")
    )
    buffer.load(0, torch.ones(1, 1, 2, 2), torch.ones(1, 1, 2, 2))
    buffer.load(1, torch.ones(1, 1, 2, 2), torch.ones(1, 1, 2, 2))
    buffer.set_valid(0, torch.tensor([[False, True]]))
    buffer.set_step(torch.ones(1, 1, dtype=torch.bool))
    keys, values = buffer.update(torch.full((1, 1, 1, 2), 7.0), torch.full((1, 1, 1, 2), 8.0), 1)
    assert keys.shape == (1, 1, 4, 2) and keys[0, 0, :, 0].tolist() == [1, 1, 7, 0]
    assert values[0, 0, 2].tolist() == [8, 8] and buffer.get_seq_length() == 3
    assert buffer.valid[0].tolist() == [[False, True, True, False]]
    assert (buffer.masks(1, torch.float32)[0][0, 0, 0] == 0).tolist() == [False, True, True, False]
    buffer.set_step(torch.ones(1, 1, dtype=torch.bool))
    with pytest.raises(ValueError, match="full"):
        buffer.set_step(torch.ones(1, 1, dtype=torch.bool))


def test_two_groups_join_after_keep():
    """Layers before K hold the whole prefix (4), later layers the kept part (2); after the 1-token question both
    hold kept + question, the first group's slots moved to the front in order."""
    buffer = KVBuffer(
        num_layers=3,
        batch=1,
        kv_heads=1,
        head_dim=1,
        capacity=8,
        dtype=torch.float32,
        device=torch.device("cpu"),
        split=1,
    )
    assert buffer.group_of == [0, 1, 1] and buffer.layers_of(1) == [1, 2]
    prefix = torch.arange(4.0).view(1, 1, 4, 1)
    buffer.load(0, prefix, prefix + 10)
    for layer in (1, 2):
        buffer.load(layer, prefix[:, :, [1, 3]], prefix[:, :, [1, 3]])
    buffer.set_valid(0, torch.ones(1, 4, dtype=torch.bool))
    buffer.set_valid(1, torch.ones(1, 2, dtype=torch.bool))
    buffer.set_step(torch.ones(1, 1, dtype=torch.bool))
    assert [int(slots) for slots in buffer.slots] == [4, 2]
    masks = buffer.masks(1, torch.float32)
    assert [(mask[0, 0, 0] == 0).sum().item() for mask in masks] == [5, 3]
    buffer.update(torch.full((1, 1, 1, 1), 9.0), torch.full((1, 1, 1, 1), 9.0), 0)
    buffer.keep(torch.tensor([1, 3, 4]))
    assert buffer.group_of == [0, 0, 0] and buffer.lengths == [3]
    assert buffer.keys[0][0, 0, :3, 0].tolist() == [1, 3, 9] and buffer.values[0][0, 0, :2, 0].tolist() == [11, 13]
    with pytest.raises(ValueError, match="one"):
        buffer.keep(torch.tensor([0]))


def test_capacity_and_modes():
    assert [capacity_for(n) for n in (1, 256, 257, 1000)] == [256, 256, 512, 1024]
    assert resolve_decode_mode("auto", torch.device("cpu")) == "generate"
    assert resolve_decode_mode("auto", torch.device("cuda")) == "static"
    assert resolve_decode_mode("generate", torch.device("cuda")) == "generate"
    with pytest.raises(ValueError, match="decode must be one of"):
        resolve_decode_mode("compiled", torch.device("cpu"))
