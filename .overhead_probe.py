import cProfile, pstats, time, io
import torch
from divprune_video import divprune
from torch.profiler import profile, ProfilerActivity
for n in (576, 4608):
    x = torch.randn(n, 4096, device="cuda", dtype=torch.float16)
    k = round(0.15 * n)
    for _ in range(20):
        divprune(x, num_keep=k)
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(100):
        divprune(x, num_keep=k)
    torch.cuda.synchronize()
    print(n, "ms per call (pipelined)", (time.perf_counter() - t) / 100 * 1e3)
    times = []
    for _ in range(50):
        torch.cuda.synchronize()
        t = time.perf_counter()
        divprune(x, num_keep=k)
        host = time.perf_counter() - t
        torch.cuda.synchronize()
        times.append(((time.perf_counter() - t) * 1e3, host * 1e3))
    times.sort()
    print(n, "ms per call (synced, median total, host part)", times[25])
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(50):
        divprune(x, num_keep=k)
        torch.cuda.synchronize()
    pr.disable()
    s = io.StringIO()
    pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(25)
    print(s.getvalue()[:6000])
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(10):
            divprune(x, num_keep=k)
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=20, max_name_column_width=60))
