"""The adapter contract's hooks for Qwen2-VL-style families (patches and grids in, 3-D positions built with the
model's own ``get_rope_index``), shared by the Qwen2.5-VL and Qwen3-VL test modules."""

import torch

from divprune_video.models import EncodedVideo

from .contract import AdapterContract

SYSTEM = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"


class QwenContract(AdapterContract):
    """The contract's hooks for Qwen's inputs: patches and grids, 3-D positions from the model's own function."""

    frames_per_group = 2
    video_token = "<|video_pad|>"
    #: Whether the model's positions take ``second_per_grid_ts`` (Qwen2.5-VL) or timestamps in the text (Qwen3-VL).
    second_per_group = True

    def literal_prompt(self, question: str, video) -> str:
        return (
            SYSTEM
            + "<|im_start|>user\n<|vision_start|>"
            + "<|video_pad|>" * video.num_placeholders
            + "<|vision_end|>"
            + question
            + "<|im_end|>\n<|im_start|>assistant\n"
        )

    @staticmethod
    def grid_thw(video: EncodedVideo) -> torch.Tensor:
        return torch.tensor([[video.num_frames, 2 * video.grid[0], 2 * video.grid[1]]])

    def timing_inputs(self, video) -> dict:
        """Qwen2.5-VL's time step: ``second_per_grid_ts``, seconds per frame pair (none for Qwen3-VL, whose
        timestamps are text)."""
        if not self.second_per_group:
            return {}
        return {"second_per_grid_ts": torch.tensor([video.frames_per_group / video.times()[1]])}

    def video_inputs(self, adapter, frames, ids) -> dict:
        patches = adapter.frame_preprocessor(frames)
        return {
            "pixel_values_videos": patches.pixel_values,
            "video_grid_thw": patches.grid_thw[None],
            "mm_token_type_ids": (ids == adapter.video_token_id).int() * 2,
            **self.timing_inputs(adapter.encode_frames(frames)),
        }

    def full_positions(self, plain_model, ids, video) -> torch.Tensor:
        token_types = (ids == plain_model.config.video_token_id).int() * 2
        positions, _ = plain_model.model.get_rope_index(
            ids,
            mm_token_type_ids=token_types,
            video_grid_thw=self.grid_thw(video),
            attention_mask=torch.ones_like(ids),
            **self.timing_inputs(video),
        )
        return positions

    def processor_kwargs(self, frames) -> dict:
        count = len(frames)
        return {"video_metadata": [{"total_num_frames": count, "fps": 1.0, "frames_indices": list(range(count))}]}
