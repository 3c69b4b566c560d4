// Patch registration's measuring steps as CUDA kernels (aoi/inference/kernreg.py compiles this
// file with NVRTC when the station starts on a CUDA device).
//
// They follow aoi/inference/devreg.py's ONNX graphs step for step (which follow
// aoi/vision/patchreg.py's CPU steps): decimation by strided sampling and a 2x2 mean, bilinear
// resampling with the border replicated (GridSample with align_corners=1 and border padding, in
// pixel coordinates here), phase correlation against the template's spectrum, the 3x3 centroid
// around the peak with circular neighbours, and the Gauss-Newton step of every full-resolution
// patch with the sums of the accept/refuse correlation. A frame costs a handful of kernels
// instead of ONNX Runtime's few hundred one-operator kernels.
//
// The DFTs are direct sums over precomputed twiddles (exp(-2 pi i k / n), k < n): the surfaces
// are at most 256 wide, so a row or column is one block and the sum is short.

#define WARP_ALL 0xffffffffu

struct cfloat { float x, y; };

__device__ __forceinline__ cfloat cmul(cfloat a, cfloat b) {
    return {a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x};
}

__device__ __forceinline__ cfloat cmul_conj(cfloat a, cfloat b) {  // a * conj(b)
    return {a.x * b.x + a.y * b.y, a.y * b.x - a.x * b.y};
}

// The frame reduced as patchreg._decimate does: every stride-th pixel, then (step 2) the mean
// of each 2x2 block of those. dst is [h, w] float.
extern "C" __global__ void decimate_u8(const unsigned char* src, int src_w, int stride, int step,
                                       float* dst, int h, int w) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y;
    if (x >= w || y >= h) return;
    float sum = 0.f;
    for (int i = 0; i < step; ++i)
        for (int j = 0; j < step; ++j)
            sum += src[(size_t)((y * step + i) * stride) * src_w + (x * step + j) * stride];
    dst[y * w + x] = sum / (float)(step * step);
}

// The whole-frame phase correlation's input: the coarse level (halved once more when `halve`),
// cropped to [ch, cw] and times the window (cropped the same way, [ch, cw]).
extern "C" __global__ void coarse_input(const float* small, int w, int halve, const float* window,
                                        float* out, int ch, int cw) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y;
    if (x >= cw || y >= ch) return;
    float v;
    if (halve) {
        const float* r0 = small + (size_t)(2 * y) * w + 2 * x;
        v = 0.25f * (r0[0] + r0[1] + r0[w] + r0[w + 1]);
    } else {
        v = small[(size_t)y * w + x];
    }
    out[y * cw + x] = v * window[y * cw + x];
}

// Forward DFT along rows of B real images [B, h, w]: one block per (row, image), one thread per
// output frequency. tw: the w twiddles.
extern "C" __global__ void dft_rows(const float* in, cfloat* out, int h, int w, const cfloat* tw) {
    extern __shared__ float row[];
    int y = blockIdx.x, b = blockIdx.y, u = threadIdx.x;
    const float* src = in + ((size_t)b * h + y) * w;
    for (int x = u; x < w; x += blockDim.x) row[x] = src[x];
    __syncthreads();
    if (u >= w) return;
    cfloat acc = {0.f, 0.f};
    int k = 0;
    for (int x = 0; x < w; ++x) {
        acc.x += row[x] * tw[k].x;
        acc.y += row[x] * tw[k].y;
        k += u;
        if (k >= w) k -= w;
    }
    out[((size_t)b * h + y) * w + u] = acc;
}

// Forward DFT along columns, then the normalised cross-power against the template's spectrum
// tmpl [B, h, w]: c = F conj(T) / max(|F conj(T)|, 1e-12). One block per (column, image).
extern "C" __global__ void dft_cols_cross(const cfloat* in, const cfloat* tmpl, cfloat* out,
                                          int h, int w, const cfloat* tw) {
    extern __shared__ cfloat col[];
    int u = blockIdx.x, b = blockIdx.y, v = threadIdx.x;
    const cfloat* src = in + (size_t)b * h * w + u;
    for (int y = v; y < h; y += blockDim.x) col[y] = src[(size_t)y * w];
    __syncthreads();
    if (v >= h) return;
    cfloat acc = {0.f, 0.f};
    int k = 0;
    for (int y = 0; y < h; ++y) {
        cfloat p = cmul(col[y], tw[k]);
        acc.x += p.x;
        acc.y += p.y;
        k += v;
        if (k >= h) k -= h;
    }
    size_t at = ((size_t)b * h + v) * w + u;
    cfloat c = cmul_conj(acc, tmpl[at]);
    float mag = fmaxf(sqrtf(c.x * c.x + c.y * c.y), 1e-12f);
    out[at] = {c.x / mag, c.y / mag};
}

// Inverse DFT along columns (unscaled: the peak and its centroid do not depend on the scale).
extern "C" __global__ void idft_cols(const cfloat* in, cfloat* out, int h, int w, const cfloat* tw) {
    extern __shared__ cfloat col[];
    int u = blockIdx.x, b = blockIdx.y, y = threadIdx.x;
    const cfloat* src = in + (size_t)b * h * w + u;
    for (int v = y; v < h; v += blockDim.x) col[v] = src[(size_t)v * w];
    __syncthreads();
    if (y >= h) return;
    cfloat acc = {0.f, 0.f};
    int k = 0;
    for (int v = 0; v < h; ++v) {
        cfloat p = cmul_conj(col[v], tw[k]);
        acc.x += p.x;
        acc.y += p.y;
        k += y;
        if (k >= h) k -= h;
    }
    out[((size_t)b * h + y) * w + u] = acc;
}

// Inverse DFT along rows, keeping the real part: the correlation surfaces [B, h, w].
extern "C" __global__ void idft_rows_real(const cfloat* in, float* out, int h, int w,
                                          const cfloat* tw) {
    extern __shared__ cfloat row_c[];
    int y = blockIdx.x, b = blockIdx.y, x = threadIdx.x;
    const cfloat* src = in + ((size_t)b * h + y) * w;
    for (int u = x; u < w; u += blockDim.x) row_c[u] = src[u];
    __syncthreads();
    if (x >= w) return;
    float acc = 0.f;
    int k = 0;
    for (int u = 0; u < w; ++u) {
        acc += row_c[u].x * tw[k].x + row_c[u].y * tw[k].y;  // Re(row * conj(tw))
        k += x;
        if (k >= w) k -= w;
    }
    out[((size_t)b * h + y) * w + x] = acc;
}

// regplan.peak_shifts for each surface [B, h, w]: the integer argmax (ties to the first), then
// the 3x3 centroid of the clipped values with circular neighbours, as signed shifts times
// `scale`, into out [B, 2]. With `warp` set (B = 1), also the translation as a pixel 2x3.
extern "C" __global__ void peak(const float* surf, int h, int w, float scale, float* out,
                                float* warp) {
    __shared__ float best_v[32];
    __shared__ int best_i[32];
    int b = blockIdx.x, n = h * w;
    const float* s = surf + (size_t)b * n;
    float v = -3.0e38f;
    int at = 0x7fffffff;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        float c = s[i];
        if (c > v) { v = c; at = i; }  // a thread's indices rise: the first of its maxima
    }
    for (int off = 16; off > 0; off >>= 1) {
        float ov = __shfl_down_sync(WARP_ALL, v, off);
        int oi = __shfl_down_sync(WARP_ALL, at, off);
        if (ov > v || (ov == v && oi < at)) { v = ov; at = oi; }
    }
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    if (lane == 0) { best_v[wid] = v; best_i[wid] = at; }
    __syncthreads();
    if (threadIdx.x != 0) return;
    for (int i = 1; i < (int)(blockDim.x + 31) / 32; ++i)
        if (best_v[i] > v || (best_v[i] == v && best_i[i] < at)) { v = best_v[i]; at = best_i[i]; }
    int py = at / w, px = at - py * w;
    float total = 0.f, mx = 0.f, my = 0.f;
    for (int dy = -1; dy <= 1; ++dy)
        for (int dx = -1; dx <= 1; ++dx) {
            int yy = (py + dy + h) % h, xx = (px + dx + w) % w;
            float c = fmaxf(s[yy * w + xx], 0.f);
            total += c;
            mx += c * dx;
            my += c * dy;
        }
    total = fmaxf(total, 1e-12f);
    float sx = px + mx / total, sy = py + my / total;
    if (sx > w / 2.f) sx -= w;
    if (sy > h / 2.f) sy -= h;
    out[2 * b] = sx * scale;
    out[2 * b + 1] = sy * scale;
    if (warp) {
        warp[0] = 1.f; warp[1] = 0.f; warp[2] = sx * scale;
        warp[3] = 0.f; warp[4] = 1.f; warp[5] = sy * scale;
    }
}

template <typename T>
__device__ __forceinline__ float bilinear(const T* src, int sh, int sw, double u, double v) {
    // Border replicated: the coordinate is clamped to the pixel centres first.
    u = fmin(fmax(u, 0.0), (double)(sw - 1));
    v = fmin(fmax(v, 0.0), (double)(sh - 1));
    int x0 = (int)u, y0 = (int)v;
    int x1 = min(x0 + 1, sw - 1), y1 = min(y0 + 1, sh - 1);
    float fx = (float)(u - x0), fy = (float)(v - y0);
    float a = (float)src[(size_t)y0 * sw + x0], b = (float)src[(size_t)y0 * sw + x1];
    float c = (float)src[(size_t)y1 * sw + x0], d = (float)src[(size_t)y1 * sw + x1];
    return (a + (b - a) * fx) * (1.f - fy) + (c + (d - c) * fx) * fy;
}

// Every patch pixel resampled at warp (a pixel 2x3 of the source's level, template -> source)
// and times the patch window: grid [2, n] holds the template x and y, out [n], n = K * P * P.
template <typename T>
__device__ void sample(const T* src, int sh, int sw, const float* grid, int n, const float* warp,
                       const float* window, int pp, float* out) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    double gx = grid[i], gy = grid[n + i];
    double u = warp[0] * gx + warp[1] * gy + warp[2];
    double v = warp[3] * gx + warp[4] * gy + warp[5];
    out[i] = bilinear(src, sh, sw, u, v) * window[i % pp];
}

extern "C" __global__ void sample_u8(const unsigned char* src, int sh, int sw, const float* grid,
                                     int n, const float* warp, const float* window, int pp,
                                     float* out) {
    sample(src, sh, sw, grid, n, warp, window, pp, out);
}

extern "C" __global__ void sample_f32(const float* src, int sh, int sw, const float* grid, int n,
                                      const float* warp, const float* window, int pp, float* out) {
    sample(src, sh, sw, grid, n, warp, window, pp, out);
}

#define P 64
#define Q (P - 6)  // the 5x5 blur's valid part, less one pixel each side (regplan.LK_TRIM = 3)
#define THREADS 256

__device__ float block_sum(float v, float* scratch) {
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(WARP_ALL, v, off);
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    __syncthreads();  // scratch may still be read by a previous call
    if (lane == 0) scratch[wid] = v;
    __syncthreads();
    float total = 0.f;
    for (int i = 0; i < THREADS / 32; ++i) total += scratch[i];
    return total;
}

// The Gauss-Newton step of each full-resolution patch (one block of THREADS per patch): the
// patch resampled at warp, blurred by the separable 5x5 Gaussian (valid part, less one pixel
// each side), made zero-mean and brought to the template's contrast; its step is
// -lk_step . (inner * gain - lk_template). out [K, 4]: the step (x, y), then the patch's share of
// the accept/refuse correlation's sums: sum(a0 * inner) and sum(inner * inner).
// With `est` set (the whole fit on the device, below), a step after the fit converged does
// nothing.
extern "C" __global__ void __launch_bounds__(THREADS)
gradient(const unsigned char* frame, int fh, int fw, const float* grid, const float* warp,
         const float* blur, const float* lk_template, const float* lk_step, const float* a0,
         const float* tsum, float* out, const double* est) {
    if (est && est[6] != 0.0) return;
    __shared__ float s[P * P];
    __shared__ float t[P * (P - 4)];
    __shared__ float scratch[THREADS / 32];
    int k = blockIdx.x, n = gridDim.x * P * P;
    const float* gk = grid + (size_t)k * P * P;
    for (int i = threadIdx.x; i < P * P; i += THREADS) {
        double gx = gk[i], gy = gk[n + i];
        double u = warp[0] * gx + warp[1] * gy + warp[2];
        double v = warp[3] * gx + warp[4] * gy + warp[5];
        s[i] = bilinear(frame, fh, fw, u, v);
    }
    __syncthreads();
    for (int i = threadIdx.x; i < P * (P - 4); i += THREADS) {  // along rows: [P, P - 4]
        int y = i / (P - 4), x = i - y * (P - 4);
        const float* r = s + y * P + x;
        t[i] = blur[0] * r[0] + blur[1] * r[1] + blur[2] * r[2] + blur[3] * r[3] + blur[4] * r[4];
    }
    __syncthreads();
    float seen[(Q * Q + THREADS - 1) / THREADS];
    float part = 0.f;
    int m = 0;
    for (int i = threadIdx.x; i < Q * Q; i += THREADS, ++m) {  // down columns, then trimmed
        int y = i / Q + 1, x = i - (i / Q) * Q + 1;
        const float* c = t + y * (P - 4) + x;
        const int st = P - 4;
        float val = blur[0] * c[0] + blur[1] * c[st] + blur[2] * c[2 * st] + blur[3] * c[3 * st]
                    + blur[4] * c[4 * st];
        seen[m] = val;
        part += val;
    }
    float mean = block_sum(part, scratch) / (float)(Q * Q);
    float e = 0.f, ab = 0.f;
    m = 0;
    for (int i = threadIdx.x; i < Q * Q; i += THREADS, ++m) {
        float inner = seen[m] - mean;
        seen[m] = inner;
        e += inner * inner;
        ab += a0[(size_t)k * Q * Q + i] * inner;
    }
    float energy = block_sum(e, scratch);
    float s_ab = block_sum(ab, scratch);
    float gain = sqrtf(tsum[k] / fmaxf(energy, 1e-6f));
    const float* tk = lk_template + (size_t)k * Q * Q;
    const float* sx = lk_step + (size_t)k * 2 * Q * Q;
    float dx = 0.f, dy = 0.f;
    m = 0;
    for (int i = threadIdx.x; i < Q * Q; i += THREADS, ++m) {
        float diff = seen[m] * gain - tk[i];
        dx += sx[i] * diff;
        dy += sx[Q * Q + i] * diff;
    }
    dx = block_sum(dx, scratch);
    dy = block_sum(dy, scratch);
    if (threadIdx.x == 0) {
        out[4 * k] = -dx;
        out[4 * k + 1] = -dy;
        out[4 * k + 2] = s_ab;
        out[4 * k + 3] = energy;
    }
}

// The robust rigid fit of aoi/vision/rigidfit.py on the device, in float64 as there: the
// closed-form Procrustes rotation of the pairs (template x, y -> frame x, y), then at most two
// refits without the pairs farther than `factor` times the median residual (and `floor_px`),
// unless fewer than `min_pairs` would remain.
#define MAX_PAIRS 64

__device__ void fit_rigid(const double (*p)[4], int n, double* w) {
    double c[4] = {0.0, 0.0, 0.0, 0.0};
    for (int i = 0; i < n; ++i)
        for (int j = 0; j < 4; ++j) c[j] += p[i][j];
    for (int j = 0; j < 4; ++j) c[j] /= n;
    double cross = 0.0, dot = 0.0;
    for (int i = 0; i < n; ++i) {
        double ax = p[i][0] - c[0], ay = p[i][1] - c[1], bx = p[i][2] - c[2], by = p[i][3] - c[3];
        cross += ax * by - ay * bx;
        dot += ax * bx + ay * by;
    }
    double angle = atan2(cross, dot), co = cos(angle), si = sin(angle);
    w[0] = co; w[1] = -si; w[2] = c[2] - (co * c[0] - si * c[1]);
    w[3] = si; w[4] = co;  w[5] = c[3] - (si * c[0] + co * c[1]);
}

__device__ double median(double* v, int n) {  // sorts v
    for (int i = 1; i < n; ++i)
        for (int j = i; j > 0 && v[j - 1] > v[j]; --j) {
            double t = v[j]; v[j] = v[j - 1]; v[j - 1] = t;
        }
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

__device__ void fit_robust(double (*p)[4], int n, double* w, double factor, double floor_px,
                           int min_pairs) {
    fit_rigid(p, n, w);
    double res[MAX_PAIRS], sorted[MAX_PAIRS];
    for (int round = 0; round < 2; ++round) {
        for (int i = 0; i < n; ++i) {
            res[i] = hypot(w[0] * p[i][0] + w[1] * p[i][1] + w[2] - p[i][2],
                           w[3] * p[i][0] + w[4] * p[i][1] + w[5] - p[i][3]);
            sorted[i] = res[i];
        }
        double limit = fmax(factor * median(sorted, n), floor_px);
        int keep = 0;
        for (int i = 0; i < n; ++i) keep += res[i] <= limit;
        if (keep == n || keep < min_pairs) break;
        int m = 0;
        for (int i = 0; i < n; ++i)
            if (res[i] <= limit) {
                for (int j = 0; j < 4; ++j) p[m][j] = p[i][j];
                ++m;
            }
        n = m;
        fit_rigid(p, n, w);
    }
}

// One fit of the patch schedule (aoi/vision/patchreg.py, PatchAligner._estimate), one thread.
// est [8]: the warp (2x3, float64), a flag set once the gradient steps converged, and the count
// of gradient steps fitted. `first`: the coarse level's fit, from the translation `start` (a float
// 2x3) and the patches' peak shifts; it resets the flag. Otherwise the fit of a gradient step
// (shifts every `stride` floats, pairs where `use` is set), after which a move under
// `converged_px` at every patch centre stops the steps. `rescale` > 0 carries the new warp to a
// level that many times larger (patchreg._rescale). warp_f gets the warp as float for the kernels.
extern "C" __global__ void fit(const float* shifts, int stride, const double* centres,
                               const unsigned char* use, int k, const float* start, double* est,
                               float* warp_f, double rescale, double converged_px, int first,
                               double factor, double floor_px, int min_pairs) {
    if (threadIdx.x != 0 || blockIdx.x != 0) return;
    if (!first && est[6] != 0.0) return;
    double w[6], nw[6];
    for (int j = 0; j < 6; ++j) w[j] = first ? (double)start[j] : est[j];
    double pairs[MAX_PAIRS][4];
    int n = 0;
    for (int i = 0; i < k && n < MAX_PAIRS; ++i) {
        if (use && !use[i]) continue;
        double x = centres[2 * i], y = centres[2 * i + 1];
        double px = x + (double)shifts[stride * i], py = y + (double)shifts[stride * i + 1];
        pairs[n][0] = x; pairs[n][1] = y;
        pairs[n][2] = w[0] * px + w[1] * py + w[2];
        pairs[n][3] = w[3] * px + w[4] * py + w[5];
        ++n;
    }
    fit_robust(pairs, n, nw, factor, floor_px, min_pairs);
    if (rescale > 0.0) {  // x_big = r (x_small + 0.5) - 0.5 at both ends of the warp
        double r = rescale;
        nw[2] = r * nw[2] + (1.0 - r) * 0.5 * (nw[0] + nw[1]) + (r - 1.0) * 0.5;
        nw[5] = r * nw[5] + (1.0 - r) * 0.5 * (nw[3] + nw[4]) + (r - 1.0) * 0.5;
    }
    if (first) {
        est[6] = 0.0;
        est[7] = 0.0;
    } else {
        double moved = 0.0;
        for (int i = 0; i < k; ++i) {
            double x = centres[2 * i], y = centres[2 * i + 1];
            moved = fmax(moved, fabs((nw[0] - w[0]) * x + (nw[1] - w[1]) * y + nw[2] - w[2]));
            moved = fmax(moved, fabs((nw[3] - w[3]) * x + (nw[4] - w[4]) * y + nw[5] - w[5]));
        }
        est[7] += 1.0;
        if (moved < converged_px) est[6] = 1.0;
    }
    for (int j = 0; j < 6; ++j) {
        est[j] = nw[j];
        warp_f[j] = (float)nw[j];
    }
}

// The network's `affine` input from the device fit's estimate (aoi/inference/chain.py): the
// warp as the host sees it (float32), then aoi/regplan.normalised_warp's map to GridSample's
// align_corners=1 coordinates, rounded as numpy rounds it (no fused multiply-add), so the
// network reads the very map the host would have sent. sx = 2 / (w - 1), sy = 2 / (h - 1).
extern "C" __global__ void affine_out(const double* est, float* out, double sx, double sy) {
    if (threadIdx.x != 0 || blockIdx.x != 0) return;
    for (int j = 0; j < 3; ++j) {
        double shift = j == 2 ? -1.0 : 0.0;
        out[j] = (float)__dadd_rn(__dmul_rn(sx, (double)(float)est[j]), shift);
        out[3 + j] = (float)__dadd_rn(__dmul_rn(sy, (double)(float)est[3 + j]), shift);
    }
}
