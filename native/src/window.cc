// The searches of extraction (docs/method.md steps 2-3): the max-sum window and exact top-k. Each
// exported function takes exactly the arguments of the Kernels method of the same name
// (src/engine/kernels.ts); src/engine/ts/window.ts is the reference.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include <omp.h>

#include "args.h"
#include "kernels.h"
#include "parallel.h"

namespace {

using nuggets_native::Args;
using nuggets_native::kParallelWork;
using nuggets_native::prod;

// ------------------------------------------------------------------ max-sum window
// The summed-area-table identity in rolling, separable form with O(m) memory instead of an
// (n+1)(m+1) float64 table (566 MB at 13824 x 5120):
//   colWin[c] = S[i][c] + ... + S[i+wn-1][c]     slid down a row per step: colWin += S[i+wn] - S[i]
//   prefix[c] = colWin[0] + ... + colWin[c-1]     (one row of the SAT of colWin)
//   window(i, j) = prefix[j+wm] - prefix[j]
// All in float64, the same operations in the same order as src/engine/ts/window.ts, so both backends
// pick the same window bit for bit. Each S row is read twice (entering and leaving the band).
// Parallel in blocks of kBlock window rows, two barriers per block: the column sums of the block's
// rows are slid and snapshotted split over column bands, then each snapshot row is prefix-summed
// and scored split over rows; the per-row bests are combined in row order (ties: smallest i, then j).
constexpr int64_t kBlock = 64;
constexpr int64_t kBand = 512;

Napi::Value MaxWindow(const Napi::CallbackInfo& info) {
  Args a(info, "maxWindow");
  const int64_t n = a.size(1, "n"), m = a.size(2, "m"), wn = a.size(3, "wn"), wm = a.size(4, "wm");
  if (a.ok()) {
    if (n < 1 || m < 1 || wn < 1 || wm < 1) a.fail("n, m, wn and wm must all be >= 1");
    else if (wn > n || wm > m)
      a.fail("the window [" + std::to_string(wn) + ", " + std::to_string(wm) + "] does not fit in the matrix [" +
             std::to_string(n) + ", " + std::to_string(m) + "]");
  }
  const float* S = a.f32(0, "S", prod({n, m}));
  if (!a.ok()) return a.env().Undefined();

  const int64_t rowsW = n - wn + 1;             // window positions down
  const int64_t R = std::min(kBlock, rowsW);    // window rows per block
  const int64_t nband = (m + kBand - 1) / kBand;
  std::vector<double> colWin(m, 0.0), snap(static_cast<size_t>(R) * m);
  std::vector<double> bandTotal(nband, 0.0), rowBest(R);
  std::vector<int64_t> rowJ(R);
  double best = -INFINITY;
  int64_t bi = 0, bj = 0;
  const bool par = n * m > kParallelWork;
#pragma omp parallel if (par)
  {
    std::vector<double> prefix(m + 1, 0.0);
    // colWin for window row 0.
#pragma omp for schedule(static)
    for (int64_t band = 0; band < nband; band++) {
      const int64_t c0 = band * kBand, c1 = std::min(m, c0 + kBand);
      double tot = 0;
      for (int64_t r = 0; r < wn; r++) {
        const float* row = S + r * m;
#pragma omp simd reduction(+ : tot)
        for (int64_t c = c0; c < c1; c++) {
          colWin[c] += row[c];
          tot += row[c];
        }
      }
      bandTotal[band] = tot;
    }
    for (int64_t i0 = 0; i0 < rowsW; i0 += R) {
      const int64_t nr = std::min(R, rowsW - i0);
      // Slide to each window row of the block (row 0 is already there) and snapshot it.
#pragma omp for schedule(static)
      for (int64_t band = 0; band < nband; band++) {
        const int64_t c0 = band * kBand, c1 = std::min(m, c0 + kBand);
        double tot = 0;
        for (int64_t r = 0; r < nr; r++) {
          const int64_t i = i0 + r;
          if (i > 0) {
            const float* in = S + (i - 1 + wn) * m;
            const float* out = S + (i - 1) * m;
#pragma omp simd reduction(+ : tot)
            for (int64_t c = c0; c < c1; c++) {
              colWin[c] += static_cast<double>(in[c]) - static_cast<double>(out[c]);
              tot += in[c];
            }
          }
          std::memcpy(&snap[static_cast<size_t>(r) * m + c0], &colWin[c0], sizeof(double) * (c1 - c0));
        }
        bandTotal[band] += tot;
      }
      // Score every window of each snapshot row.
#pragma omp for schedule(static)
      for (int64_t r = 0; r < nr; r++) {
        const double* cw = &snap[static_cast<size_t>(r) * m];
        double* pf = prefix.data();
        for (int64_t c = 0; c < m; c++) pf[c + 1] = pf[c] + cw[c];
        double b = -INFINITY;
        int64_t bjr = 0;
        for (int64_t j = 0; j + wm <= m; j++) {
          const double s = pf[j + wm] - pf[j];
          if (s > b) { b = s; bjr = j; }
        }
        rowBest[r] = b;
        rowJ[r] = bjr;
      }
#pragma omp single
      for (int64_t r = 0; r < nr; r++) {
        if (rowBest[r] > best) { best = rowBest[r]; bi = i0 + r; bj = rowJ[r]; }
      }  // implicit barrier before the next block reuses snap
    }
  }
  double total = 0;
  for (double x : bandTotal) total += x;
  if (!std::isfinite(total)) {
    a.fail("S contains NaN or infinite values");
    return a.env().Undefined();
  }
  Napi::Object res = Napi::Object::New(a.env());
  res.Set("i", Napi::Number::New(a.env(), static_cast<double>(bi)));
  res.Set("j", Napi::Number::New(a.env(), static_cast<double>(bj)));
  res.Set("sum", Napi::Number::New(a.env(), best));
  res.Set("total", Napi::Number::New(a.env(), total));
  return res;
}

// ------------------------------------------------------------------ exact top-k
// Radix select on order-preserving integer keys (16-bit digits: 2 passes for float, 4 for double)
// finds the k-th largest key K exactly, then one ordered pass keeps every key > K and the first
// (k - #greater) keys equal to K: indices come out ascending, ties prefer the lower index, and no
// copy of the values or sort of 45M indices is needed. -0 and +0 map to the same key (they tie).
inline uint32_t keyOf(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if (u == 0x80000000u) u = 0;
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
inline uint64_t keyOf(double d) {
  uint64_t u;
  std::memcpy(&u, &d, 8);
  if (u == 0x8000000000000000ull) u = 0;
  return (u & 0x8000000000000000ull) ? ~u : (u | 0x8000000000000000ull);
}

template <typename T, typename K>
void topkImpl(const T* x, int64_t n, int64_t k, int32_t* out) {
  if (k == 0) return;
  if (n <= 4096) {  // small: a sort is cheaper than 65536-bin histograms
    std::vector<int32_t> idx(n);
    std::iota(idx.begin(), idx.end(), 0);
    std::nth_element(idx.begin(), idx.begin() + (k - 1), idx.end(), [x](int32_t p, int32_t q) {
      return x[p] > x[q] || (x[p] == x[q] && p < q);
    });
    std::sort(idx.begin(), idx.begin() + k);
    std::copy(idx.begin(), idx.begin() + k, out);
    return;
  }
  constexpr int kBits = sizeof(K) * 8;
  constexpr int kBins = 1 << 16;
  const int ntMax = omp_get_max_threads();
  std::vector<uint32_t> local(static_cast<size_t>(ntMax) * kBins);
  std::vector<uint64_t> hist(kBins);
  K prefix = 0;
  int64_t need = k;  // how many of the keys still undecided must be taken
  for (int p = 0; p < kBits / 16; p++) {
    const int shift = kBits - 16 * (p + 1);
    std::fill(local.begin(), local.end(), 0u);
#pragma omp parallel num_threads(ntMax)
    {
      uint32_t* h = local.data() + static_cast<size_t>(omp_get_thread_num()) * kBins;
#pragma omp for schedule(static)
      for (int64_t i = 0; i < n; i++) {
        const K key = keyOf(x[i]);
        if (p == 0 || (key >> (shift + 16)) == prefix) h[(key >> shift) & 0xffff]++;
      }
    }
    for (int b = 0; b < kBins; b++) {
      uint64_t s = 0;
      for (int t = 0; t < ntMax; t++) s += local[static_cast<size_t>(t) * kBins + b];
      hist[b] = s;
    }
    int64_t above = 0;
    int b = kBins - 1;
    for (; b > 0; b--) {
      if (above + static_cast<int64_t>(hist[b]) >= need) break;
      above += static_cast<int64_t>(hist[b]);
    }
    need -= above;
    prefix = static_cast<K>((prefix << 16) | static_cast<K>(b));
  }
  const K kth = prefix;
  // Per chunk: counts, then where its output starts and how many of its ties it takes.
  const int64_t nch = std::min<int64_t>(n, 64);
  std::vector<int64_t> gt(nch, 0), eq(nch, 0);
#pragma omp parallel for schedule(static)
  for (int64_t ch = 0; ch < nch; ch++) {
    const int64_t lo = n * ch / nch, hi = n * (ch + 1) / nch;
    int64_t g = 0, e = 0;
    for (int64_t i = lo; i < hi; i++) {
      const K key = keyOf(x[i]);
      g += key > kth;
      e += key == kth;
    }
    gt[ch] = g;
    eq[ch] = e;
  }
  std::vector<int64_t> off(nch), take(nch);
  int64_t w = 0, left = need;
  for (int64_t ch = 0; ch < nch; ch++) {
    off[ch] = w;
    take[ch] = std::min(eq[ch], left);
    left -= take[ch];
    w += gt[ch] + take[ch];
  }
#pragma omp parallel for schedule(static)
  for (int64_t ch = 0; ch < nch; ch++) {
    const int64_t lo = n * ch / nch, hi = n * (ch + 1) / nch;
    const int64_t end = off[ch] + gt[ch] + take[ch];
    int64_t o = off[ch], t = take[ch];
    // Branch-free: every index is written at out[o] and kept only by advancing o; the loop stops as
    // soon as the chunk's share is complete, so nothing is written past it.
    for (int64_t i = lo; i < hi && o < end; i++) {
      const K key = keyOf(x[i]);
      const bool tie = (key == kth) & (t > 0);
      out[o] = static_cast<int32_t>(i);
      o += (key > kth) | tie;
      t -= tie;
    }
  }
}

template <typename T>
int64_t firstNaN(const T* x, int64_t n) {
  int64_t any = 0;
#pragma omp parallel for simd reduction(+ : any) schedule(static) if (n > kParallelWork)
  for (int64_t i = 0; i < n; i++) any += x[i] != x[i];
  if (!any) return -1;
  for (int64_t i = 0; i < n; i++)
    if (x[i] != x[i]) return i;
  return -1;
}

Napi::Value Topk(const Napi::CallbackInfo& info) {
  Args a(info, "topk");
  const int64_t n = a.size(1, "n"), k = a.size(2, "k");
  if (a.ok() && k > n) a.fail("k = " + std::to_string(k) + " must be an integer in [0, " + std::to_string(n) + "]");
  const int type = a.typeOf(0);
  if (a.ok() && type != napi_float32_array && type != napi_float64_array) a.fail("values must be a Float32Array or Float64Array", true);
  const float* xf = type == napi_float32_array ? a.f32(0, "values", n) : nullptr;
  const double* xd = type == napi_float64_array ? a.f64(0, "values", n) : nullptr;
  if (!a.ok()) return a.env().Undefined();
  const int64_t bad = xf ? firstNaN(xf, n) : firstNaN(xd, n);
  if (bad >= 0) {
    a.fail("values[" + std::to_string(bad) + "] is NaN");
    return a.env().Undefined();
  }
  Napi::Int32Array res = Napi::Int32Array::New(a.env(), static_cast<size_t>(k));
  if (xf) topkImpl<float, uint32_t>(xf, n, k, res.Data());
  else topkImpl<double, uint64_t>(xd, n, k, res.Data());
  return res;
}

}  // namespace

void InitWindow(Napi::Env env, Napi::Object exports) {
  exports.Set("maxWindow", Napi::Function::New(env, MaxWindow, "maxWindow"));
  exports.Set("topk", Napi::Function::New(env, Topk, "topk"));
}
