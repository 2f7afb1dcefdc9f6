"""Run the fused QuickGELU kernel under Triton's CPU interpreter (started by test_fused.py with TRITON_INTERPRET=1).

The interpreter evaluates with NumPy, whose float32 ``exp`` may differ from CUDA's in the last bit, so this checks
the kernel's logic (indexing, masking, the rounding steps) to within one unit in the last place of the 16-bit
result; bit-identity is checked on the GPU. float16 only: the interpreter converts float32 to bfloat16 by
truncation, not rounding to nearest as the GPU does.
"""

import sys

import torch

from divprune_video.models.fused import _BLOCK, _interpreted, _kernel, quick_gelu_reference


def main() -> int:
    kernel = _kernel()
    assert _interpreted(), "run with TRITON_INTERPRET=1"
    results = []
    for dtype in (torch.float16,):
        x = (torch.randn(_BLOCK + 37) * 5).to(dtype)
        out = torch.full_like(x, float("nan"))
        kernel[(2,)](x, out, x.numel(), BLOCK=_BLOCK, CUDA_EXP=False)
        expected = quick_gelu_reference(x)
        ulps = (out.view(torch.int16).int() - expected.view(torch.int16).int()).abs()
        if int(ulps.max()) > 1:
            print(f"{dtype}: differs by {int(ulps.max())} ulps at {int(ulps.argmax())}")
            return 1
        results.append(f"{str(dtype).split('.')[-1]} ok")
    print("fused quick_gelu under the interpreter: " + ", ".join(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
