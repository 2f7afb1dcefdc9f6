// The greedy's step loop over one long row, in CUDA C: several cooperating blocks, several picks per exchange.
// Compiled at run time with NVRTC (selection/_cuda.py); the same algorithm and key order as the Triton kernel
// _greedy_rounds_kernel in selection/_triton.py, and the same float32 operations, so the same picks.
//
// Each block owns BLOCK consecutive tokens and their running minima (registers). A round:
//   1. every block offers its TOP best keys (sorted by token index) and its (TOP + 1)-th best key;
//   2. the blocks exchange these keys through global memory (one row of `keys` per round);
//   3. tau = the largest (TOP + 1)-th key: every token not offered is at or below it. Running minima only fall, so
//      while the best offered token (its minimum updated by the round's earlier picks) beats tau it is the greedy's
//      next pick over all tokens. The offered tokens above tau are the round's candidates;
//   4. every block gathers the candidates' distances (a MAXC x MAXC tile in shared memory) and
//   5. runs the round's picks among them in one warp: a 32-bit max of the scores' ordered bits (redux.sync), the
//      lowest slot on a tie; slots are in token-index order, so that is the lowest index, as the keys order it;
//   6. folds the picked rows into its own minima.
// A key packs (score, index) into an int64 so that a larger key is a larger score, then a smaller index.
//
// Compile-time constants (-D): THREADS, PER_THREAD (tokens per thread), TOP, MAXC (>= programs * TOP, a multiple
// of 32), ROWS (rows per fold load), FROM_GRAM (1: `src` is the Gram matrix and `inv` the inverse norms, the
// distance 1 - (g * inv_pick) * inv_col; 0: `src` holds the distances). Launch: grid = programs (all resident at
// once), block = THREADS, dynamic shared memory = MAXC * MAXC * 4 bytes. Needs sm_80 or later.

#define INF_F __int_as_float(0x7f800000)
#define BLOCK (THREADS * PER_THREAD)
#define WARPS (THREADS / 32)
#define PER_LANE (MAXC / 32)
#define SENTINEL ((long long)0x8000000000000000LL)
#define BELOW ((long long)0x8000000000000001LL)
#define CLOSED ((int)0x80000000)
#define FULL 0xffffffffu

// A float's bits as an int that orders like the float (-0.0 counts as +0.0).
__device__ __forceinline__ int ordered_bits(float score) {
    int bits = score == 0.0f ? 0 : __float_as_int(score);
    return bits ^ ((bits >> 31) & 0x7FFFFFFF);
}

__device__ __forceinline__ long long pack_key(float score, int index) {
    return ((long long)ordered_bits(score) << 32) | (long long)(unsigned)(index ^ 0x7FFFFFFF);
}

__device__ __forceinline__ int key_index(long long key) { return (int)((key & 0x7FFFFFFF) ^ 0x7FFFFFFF); }

__device__ __forceinline__ float key_score(long long key) {
    int bits = (int)(key >> 32);
    return __int_as_float(bits ^ ((bits >> 31) & 0x7FFFFFFF));
}

// The distance from a pick to a token, as every kernel of the package computes it (no fused multiply-add).
__device__ __forceinline__ float distance(float value, float inv_pick, float inv_col) {
#if FROM_GRAM
    return __fsub_rn(1.0f, __fmul_rn(__fmul_rn(value, inv_pick), inv_col));
#else
    return value;
#endif
}

// The largest int64 over the warp: the high words' max, then the low words' max among the lanes holding it.
__device__ __forceinline__ long long warp_max(long long v) {
    unsigned hi = (unsigned)((unsigned long long)v >> 32) ^ 0x80000000u;
    unsigned top = __reduce_max_sync(FULL, hi);
    unsigned lo = __reduce_max_sync(FULL, hi == top ? (unsigned)(unsigned long long)v : 0u);
    return (long long)(((unsigned long long)(top ^ 0x80000000u) << 32) | lo);
}

// The largest key the warp holds in `keys` (K per lane), taken out (replaced by BELOW where it was).
template <int K>
__device__ __forceinline__ long long pop_warp_max(long long (&keys)[K]) {
    long long local = BELOW;
#pragma unroll
    for (int e = 0; e < K; ++e) local = keys[e] > local ? keys[e] : local;
    const long long best = warp_max(local);
#pragma unroll
    for (int e = 0; e < K; ++e)
        if (keys[e] == best) keys[e] = BELOW;
    return best;
}

extern "C" __global__ void __launch_bounds__(THREADS, 1) divprune_rounds(
    const float* __restrict__ src,    // (N, N) Gram matrix or distances
    const float* __restrict__ inv,    // (N,) inverse norms (FROM_GRAM), else unused
    const float* __restrict__ first,  // (N,) first-pick scores, -inf for tokens never to pick
    long long* __restrict__ out,      // (count,) picks in selection order
    long long* keys,                  // (count, programs * (TOP + 1)) exchange slots, SENTINEL-filled
    int n, int count, int programs) {
    extern __shared__ float tile[];  // tile[i * MAXC + j] = distance from candidate i (as a pick) to candidate j
    __shared__ long long warp_best[WARPS * (TOP + 1)];
    __shared__ long long offer[TOP + 1];
    __shared__ int cand_index[MAXC];
    __shared__ float cand_inv[MAXC];
    __shared__ float cand_value[MAXC];
    __shared__ int round_picks[MAXC];
    __shared__ int shared_taken, shared_live;
    __shared__ long long shared_tau;

    const int program = blockIdx.x, tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int offered = programs * TOP, slots = programs * (TOP + 1);
    float min_dist[PER_THREAD], inv_col[PER_THREAD], score[PER_THREAD];
    int col[PER_THREAD];
#pragma unroll
    for (int e = 0; e < PER_THREAD; ++e) {
        col[e] = program * BLOCK + e * THREADS + tid;
        const bool in = col[e] < n;
        score[e] = in ? first[col[e]] : -INF_F;
        inv_col[e] = in && FROM_GRAM ? inv[col[e]] : 1.0f;
        min_dist[e] = score[e] > -INF_F ? INF_F : -INF_F;
    }
    int step = 0;
    for (long long round = 0; step < count; ++round) {
        long long* exchange = keys + round * slots;
        // 1. This block's TOP + 1 best keys: each warp finds its own, then warp 0 merges them.
        long long mine[PER_THREAD];
#pragma unroll
        for (int e = 0; e < PER_THREAD; ++e) mine[e] = pack_key(score[e], col[e]);
#pragma unroll
        for (int t = 0; t <= TOP; ++t) {
            const long long best = pop_warp_max(mine);
            if (lane == 0) warp_best[warp * (TOP + 1) + t] = best;
        }
        __syncthreads();
        if (warp == 0) {
            constexpr int HELD = (WARPS * (TOP + 1) + 31) / 32;
            long long held[HELD];
#pragma unroll
            for (int e = 0; e < HELD; ++e) {
                const int i = e * 32 + lane;
                held[e] = i < WARPS * (TOP + 1) ? warp_best[i] : BELOW;
            }
#pragma unroll
            for (int t = 0; t <= TOP; ++t) {
                const long long best = pop_warp_max(held);
                if (lane == t) offer[t] = best;
            }
            __syncwarp();
            // 2. Publish: the TOP offered keys in ascending token index (a larger low word is a smaller index;
            // equal words, BELOW padding, by lane), then the (TOP + 1)-th in this block's bound slot.
            if (lane < TOP) {
                const long long key = offer[lane];
                const unsigned low = (unsigned)(unsigned long long)key;
                int rank = 0;
#pragma unroll
                for (int t = 0; t < TOP; ++t) {
                    const unsigned other = (unsigned)(unsigned long long)offer[t];
                    rank += other > low || (other == low && t < lane);
                }
                *(volatile long long*)(exchange + program * TOP + rank) = key;
            } else if (lane == TOP) {
                *(volatile long long*)(exchange + offered + program) = offer[TOP];
            }
            __threadfence();
            // Every lane waits on its own slots, so no key is read in several copies.
            long long bound = pack_key(-INF_F, 0);
            for (int i = lane; i < slots; i += 32) {
                long long key;
                do {
                    key = *(volatile long long*)(exchange + i);
                } while (key == SENTINEL);
                if (i >= offered) bound = key > bound ? key : bound;
            }
            const long long tau = warp_max(bound);
            // 3. The candidates: the offered keys above tau, in slot (= token index) order.
            int live = 0;
            for (int base = 0; base < offered; base += 32) {
                const int i = base + lane;
                const long long key = i < offered ? *(volatile long long*)(exchange + i) : BELOW;
                const bool is_live = key > tau;
                const unsigned ballot = __ballot_sync(FULL, is_live);
                if (is_live) {
                    const int at = live + __popc(ballot & ((1u << lane) - 1));
                    cand_index[at] = key_index(key);
                    cand_inv[at] = FROM_GRAM ? inv[key_index(key)] : 1.0f;
                    cand_value[at] = key_score(key);
                }
                live += __popc(ballot);
            }
            if (lane == 0) {
                shared_live = live;
                shared_tau = tau;
            }
        }
        __syncthreads();
        const int live = shared_live;
        // 4. The candidates' distances.
        for (int e = tid; e < live * live; e += THREADS) {
            const int i = e / live, j = e - i * live;
            tile[i * MAXC + j] = distance(src[(long long)cand_index[i] * n + cand_index[j]], cand_inv[i], cand_inv[j]);
        }
        __syncthreads();
        // 5. The round's picks, in warp 0: lane L holds candidates L * PER_LANE .. L * PER_LANE + PER_LANE - 1.
        if (warp == 0) {
            const long long tau = shared_tau;
            const int tau_bits = (int)(tau >> 32), tau_index = key_index(tau);
            float value[PER_LANE];
            int bits[PER_LANE];
#pragma unroll
            for (int e = 0; e < PER_LANE; ++e) {
                const int c = lane * PER_LANE + e;
                value[e] = c < live ? cand_value[c] : -INF_F;
                bits[e] = c < live ? ordered_bits(value[e]) : CLOSED;
            }
            // The first round's candidates hold first-pick scores, not running minima: one pick only.
            const int limit = round == 0 ? 1 : min(count - step, live);
            int taken = 0;
            while (taken < limit) {
                int local = CLOSED, local_slot = 0;
#pragma unroll
                for (int e = PER_LANE - 1; e >= 0; --e)
                    if (bits[e] >= local) {
                        local = bits[e];
                        local_slot = lane * PER_LANE + e;
                    }
                const int best = __reduce_max_sync(FULL, local);
                const unsigned owner = __ballot_sync(FULL, local == best);
                const int slot = __shfl_sync(FULL, local_slot, __ffs(owner) - 1);
                const int index = cand_index[slot];
                if (best == CLOSED || best < tau_bits || (best == tau_bits && index > tau_index)) break;
                if (lane == 0) round_picks[taken] = index;
                const float* row = tile + slot * MAXC + lane * PER_LANE;
#pragma unroll
                for (int e = 0; e < PER_LANE; ++e) {
                    if (bits[e] == CLOSED) continue;
                    if (lane * PER_LANE + e == slot) {
                        bits[e] = CLOSED;
                    } else if (row[e] < value[e]) {
                        value[e] = row[e];
                        bits[e] = ordered_bits(value[e]);
                    }
                }
                ++taken;
            }
            if (lane == 0) shared_taken = taken;
        }
        __syncthreads();
        const int taken = shared_taken;
        // 6. Fold the round's rows into this block's minima, ROWS rows per batch of independent loads.
        if (program == 0)
            for (int t = tid; t < taken; t += THREADS) out[step + t] = round_picks[t];
        for (int t0 = 0; t0 < taken; t0 += ROWS) {
            float value[ROWS][PER_THREAD];
            int pick[ROWS];
            float inv_pick[ROWS];
#pragma unroll
            for (int u = 0; u < ROWS; ++u) {
                pick[u] = t0 + u < taken ? round_picks[t0 + u] : -1;
                inv_pick[u] = pick[u] >= 0 && FROM_GRAM ? inv[pick[u]] : 1.0f;
#pragma unroll
                for (int e = 0; e < PER_THREAD; ++e)
                    value[u][e] = pick[u] >= 0 && col[e] < n ? src[(long long)pick[u] * n + col[e]] : 0.0f;
            }
#pragma unroll
            for (int u = 0; u < ROWS; ++u) {
                if (pick[u] < 0) continue;
#pragma unroll
                for (int e = 0; e < PER_THREAD; ++e) {
                    if (col[e] >= n) continue;
                    const float d = distance(value[u][e], inv_pick[u], inv_col[e]);
                    min_dist[e] = col[e] == pick[u] ? -INF_F : (d < min_dist[e] ? d : min_dist[e]);
                }
            }
        }
#pragma unroll
        for (int e = 0; e < PER_THREAD; ++e) score[e] = min_dist[e];
        step += taken;
        __syncthreads();
    }
}
