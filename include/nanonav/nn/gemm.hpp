#pragma once
/// A dense matrix product for the TRM's token mixing, C = op(A) op(B) (+ C), row-major, with a
/// per-row-panel epilogue.
///
/// Why not only Eigen: the token-mixing products have one short side (K = T = 68 for 8x8 maps,
/// or M = T) and are followed by elementwise work (bias, GELU, dropout, residual). Eigen's
/// kernel runs them at ~60 % of the FMA peak and the elementwise passes then stream the
/// (4 dim, C dim) result through memory again. Here, with AVX-512 and float, a 12x32 register
/// tile (24 accumulators, 2 vector loads and 12 broadcasts per k) runs over packed panels (or
/// over an operand read in place, where packing it would cost more than it saves), and the
/// epilogue runs on each finished row panel while it is still in cache. An operand that many
/// products share (a weight) can be packed once (pack_a / pack_b) and passed in.
///
/// Every other case (double, which the gradient checks use, or a CPU without AVX-512) goes to
/// Eigen with the epilogue called once on the whole result, so the two paths compute the same
/// thing; tests/test_gemm.cpp checks the kernel against a double reference on edge shapes.
///
/// No allocation once the scratch has grown to a call's size; no global state.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <new>
#include <type_traits>
#include <vector>

#include <Eigen/Core>

#include "../detail/assert.hpp"
#include "tensor.hpp"

#if defined(__AVX512F__)
#include <immintrin.h>
#define NANONAV_GEMM_AVX512 1
#else
#define NANONAV_GEMM_AVX512 0
#endif

namespace nanonav::nn {

/// Packing buffers of the kernel; one per thread (the TRM keeps one in each workspace).
struct GemmScratch {
  std::vector<float> a, b;
};

/// A std::allocator that aligns to 64 bytes (the kernel loads packed B panels aligned).
template <class T>
struct Aligned64Allocator {
  using value_type = T;
  Aligned64Allocator() noexcept = default;
  template <class U>
  Aligned64Allocator(const Aligned64Allocator<U>&) noexcept {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(64))); }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p, std::align_val_t(64)); }
  template <class U>
  bool operator==(const Aligned64Allocator<U>&) const noexcept { return true; }
  template <class U>
  bool operator!=(const Aligned64Allocator<U>&) const noexcept { return false; }
};

/// op(A) or op(B) of a product packed once into the kernel's panels (pack_a / pack_b below), for
/// an operand that many products share: the TRM's weights across its recursion. Passed to gemm
/// in place of the packing the call would do; the result is the same to the bit. Where gemm
/// runs on Eigen nothing is packed (data stays empty) and gemm reads the matrix itself.
struct PackedOperand {
  std::vector<float, Aligned64Allocator<float>> data;
  Eigen::Index rows = 0, cols = 0;  ///< of op(X): M x K for an A operand, K x N for a B operand
  bool is_b = false;
};

/// True when gemm<float> uses the hand-written kernel (AVX-512 build) rather than Eigen.
constexpr bool gemm_has_kernel() noexcept { return NANONAV_GEMM_AVX512 != 0; }

/// A matrix shaped like C (row stride ld) that an epilogue reads from memory, such as a tensor
/// kept since forward: while the kernel computes one row panel of C, its tiles prefetch this
/// matrix's rows of the next row panel. A hint only; the Eigen path ignores it.
struct EpilogueReads {
  const void* data = nullptr;
  Eigen::Index ld = 0;
};

/// An epilogue that does nothing.
struct NoEpilogue {
  void operator()(Eigen::Index, Eigen::Index, Eigen::Index, Eigen::Index) const noexcept {}
};

namespace detail {

constexpr Eigen::Index kGemmMr = 12, kGemmNr = 32, kGemmKc = 256;

#if NANONAV_GEMM_AVX512
/// Transposes 16 rows of 16 floats (src, row stride lds) into dst (row stride ldd): in-register,
/// 4 shuffle stages. (GCC 12 warns inside its own unpack/shuffle intrinsics, whose unmasked
/// forms pass an undefined source; the warning is silenced here only.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
inline void transpose16x16(const float* src, Eigen::Index lds, float* dst, Eigen::Index ldd) {
  __m512 r[16], t[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src + i * lds);
  for (int i = 0; i < 8; ++i) {  // pairs of rows, within 128-bit lanes
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int g = 0; g < 4; ++g) {  // groups of 4 rows: r[4g + m] lane L = column m + 4L
    const __m512d a0 = _mm512_castps_pd(t[4 * g]), a1 = _mm512_castps_pd(t[4 * g + 1]);
    const __m512d a2 = _mm512_castps_pd(t[4 * g + 2]), a3 = _mm512_castps_pd(t[4 * g + 3]);
    r[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
    r[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
    r[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
    r[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
  }
  for (int m = 0; m < 4; ++m) {  // 4x4 transpose of the 128-bit lanes
    const __m512 v0 = _mm512_shuffle_f32x4(r[m], r[4 + m], 0x44), v1 = _mm512_shuffle_f32x4(r[m], r[4 + m], 0xEE);
    const __m512 v2 = _mm512_shuffle_f32x4(r[8 + m], r[12 + m], 0x44), v3 = _mm512_shuffle_f32x4(r[8 + m], r[12 + m], 0xEE);
    _mm512_storeu_ps(dst + (m + 0) * ldd, _mm512_shuffle_f32x4(v0, v2, 0x88));
    _mm512_storeu_ps(dst + (m + 4) * ldd, _mm512_shuffle_f32x4(v0, v2, 0xDD));
    _mm512_storeu_ps(dst + (m + 8) * ldd, _mm512_shuffle_f32x4(v1, v3, 0x88));
    _mm512_storeu_ps(dst + (m + 12) * ldd, _mm512_shuffle_f32x4(v1, v3, 0xDD));
  }
}
#pragma GCC diagnostic pop

/// Packs rows [0, m) x cols [k0, k0 + kc) of op(A) into panels of kGemmMr rows, each
/// stored k-major (kGemmMr values per k), rows past m zero.
template <bool TransA>
inline void gemm_pack_a(const float* A, Eigen::Index lda, Eigen::Index m, Eigen::Index k0, Eigen::Index kc,
                        float* dst) {
  for (Eigen::Index p = 0; p < m; p += kGemmMr) {
    const Eigen::Index rows = std::min(kGemmMr, m - p);
    float* out = dst + p * kc;
    for (Eigen::Index k = 0; k < kc; ++k) {
      float* o = out + k * kGemmMr;
      Eigen::Index r = 0;
      if (TransA) {
        const float* src = A + (k0 + k) * lda + p;
        if (rows == kGemmMr) {
          _mm512_mask_storeu_ps(o, __mmask16(0x0FFF), _mm512_maskz_loadu_ps(__mmask16(0x0FFF), src));
          continue;
        }
        for (; r < rows; ++r) o[r] = src[r];
        for (; r < kGemmMr; ++r) o[r] = 0.0f;
      } else {
        for (r = rows; r < kGemmMr; ++r) o[r] = 0.0f;
      }
    }
    if (!TransA) {
      Eigen::Index k = 0;
      // 16 rows exist from this panel on (the 4 beyond it are read and dropped): 16x16 register
      // transposes move 16 k at a time
      if (p + 16 <= m)
        for (; k + 16 <= kc; k += 16) {
          alignas(64) float t[16 * 16];
          transpose16x16(A + p * lda + k0 + k, lda, t, 16);
          for (int kk = 0; kk < 16; ++kk)
            _mm512_mask_storeu_ps(out + (k + kk) * kGemmMr, __mmask16(0x0FFF), _mm512_load_ps(t + kk * 16));
        }
      for (Eigen::Index r = 0; r < rows; ++r) {  // the rest row by row: sequential reads
        const float* src = A + (p + r) * lda + k0;
        for (Eigen::Index kk = k; kk < kc; ++kk) out[kk * kGemmMr + r] = src[kk];
      }
    }
  }
}

/// Packs rows [k0, k0 + kc) x cols [j0, j0 + n) of B (not transposed) into one panel of
/// kGemmNr columns, k-major, columns past n zero.
inline void gemm_pack_b(const float* B, Eigen::Index ldb, Eigen::Index k0, Eigen::Index kc, Eigen::Index j0,
                        Eigen::Index n, float* dst) {
  for (Eigen::Index k = 0; k < kc; ++k) {
    const float* src = B + (k0 + k) * ldb + j0;
    float* o = dst + k * kGemmNr;
    if (n == kGemmNr) {  // a fixed-size copy: two vector moves, no call
      std::memcpy(o, src, sizeof(float) * kGemmNr);
    } else {
      std::memcpy(o, src, sizeof(float) * static_cast<std::size_t>(n));
      std::fill(o + n, o + kGemmNr, 0.0f);
    }
  }
}

/// Like gemm_pack_b for B stored transposed (N x K, stride ldb): the panel's k-major rows are
/// columns of the storage, moved by 16x16 register transposes where whole blocks exist.
inline void gemm_pack_bt(const float* B, Eigen::Index ldb, Eigen::Index k0, Eigen::Index kc, Eigen::Index j0,
                         Eigen::Index n, float* dst) {
  Eigen::Index k = 0;
  if (n == kGemmNr)
    for (; k + 16 <= kc; k += 16)
      for (Eigen::Index c = 0; c < kGemmNr; c += 16)
        transpose16x16(B + (j0 + c) * ldb + k0 + k, ldb, dst + k * kGemmNr + c, kGemmNr);
  for (; k < kc; ++k) {
    float* o = dst + k * kGemmNr;
    for (Eigen::Index c = 0; c < n; ++c) o[c] = B[(j0 + c) * ldb + k0 + k];
    for (Eigen::Index c = n; c < kGemmNr; ++c) o[c] = 0.0f;
  }
}

/// A tile of R rows and up to 32 columns: C (ldc) = [C +] Ap Bp over kc steps; m0/m1 mask
/// the columns (0-15, 16-31) that exist, so edge tiles are written in place. Row k of Bp is at
/// Bp + k * ldbp (a packed panel: ldbp = 32; B read in place: its row stride). A is k-major
/// (row r of step k at Ap[k * ldap + r]: a packed panel, or op(A) = Aᵀ read in place) or, with
/// ARows, row-major (Ap[r * ldap + k]: A read in place, one broadcast per row). At each step
/// k < pf_steps the two cache lines at pf + k * pf_ld are prefetched (the next panel of a B
/// read in place, whose rows the hardware prefetchers do not follow at that stride, or the
/// next row panel of what the epilogue reads).
template <int R, bool ARows = false>
inline void gemm_kernel(Eigen::Index kc, const float* Ap, Eigen::Index ldap, const float* Bp, Eigen::Index ldbp, float* C, Eigen::Index ldc,
                        bool load_c, __mmask16 m0, __mmask16 m1, const float* pf = nullptr,
                        Eigen::Index pf_ld = 0, Eigen::Index pf_steps = 0) {
  __m512 c0[R], c1[R];
  if (load_c) {
#pragma GCC unroll 12
    for (int r = 0; r < R; ++r) {
      c0[r] = _mm512_maskz_loadu_ps(m0, C + r * ldc);
      c1[r] = _mm512_maskz_loadu_ps(m1, C + r * ldc + 16);
    }
  } else {
#pragma GCC unroll 12
    for (int r = 0; r < R; ++r) c0[r] = c1[r] = _mm512_setzero_ps();
  }
  const float* ar[R];  // with ARows: row r of A
#pragma GCC unroll 12
  for (int r = 0; r < R; ++r) ar[r] = Ap + r * ldap;
  for (Eigen::Index k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_maskz_loadu_ps(m0, Bp), b1 = _mm512_maskz_loadu_ps(m1, Bp + 16);
    if (k < pf_steps) {
      _mm_prefetch(reinterpret_cast<const char*>(pf), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(pf + 16), _MM_HINT_T0);
      pf += pf_ld;
    }
#pragma GCC unroll 12
    for (int r = 0; r < R; ++r) {
      const __m512 a = _mm512_set1_ps(ARows ? ar[r][k] : Ap[r]);
      c0[r] = _mm512_fmadd_ps(a, b0, c0[r]);
      c1[r] = _mm512_fmadd_ps(a, b1, c1[r]);
    }
    if constexpr (!ARows) Ap += ldap;
    Bp += ldbp;
  }
#pragma GCC unroll 12
  for (int r = 0; r < R; ++r) {
    _mm512_mask_storeu_ps(C + r * ldc, m0, c0[r]);
    _mm512_mask_storeu_ps(C + r * ldc + 16, m1, c1[r]);
  }
}

/// The full 12x32 tile (kept separate from the masked one: plain loads and stores).
template <bool ARows = false>
inline void gemm_kernel_12x32(Eigen::Index kc, const float* Ap, Eigen::Index ldap, const float* Bp, Eigen::Index ldbp, float* C, Eigen::Index ldc,
                              bool load_c, const float* pf = nullptr, Eigen::Index pf_ld = 0,
                              Eigen::Index pf_steps = 0) {
  gemm_kernel<kGemmMr, ARows>(kc, Ap, ldap, Bp, ldbp, C, ldc, load_c, __mmask16(0xFFFF), __mmask16(0xFFFF), pf, pf_ld,
                              pf_steps);
}

template <bool ARows = false>
inline void gemm_tile(Eigen::Index rows, Eigen::Index cols, Eigen::Index kc, const float* Ap, Eigen::Index ldap, const float* Bp,
                      Eigen::Index ldbp, float* C, Eigen::Index ldc, bool load_c) {
  const __mmask16 m0 = cols >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << cols) - 1u);
  const __mmask16 m1 = cols >= 32 ? __mmask16(0xFFFF) : cols <= 16 ? __mmask16(0) : __mmask16((1u << (cols - 16)) - 1u);
  switch (rows) {
    case 12: gemm_kernel<12, ARows>(kc, Ap, ldap, Bp, ldbp, C, ldc, load_c, m0, m1); break;
    case 11: gemm_kernel<11, ARows>(kc, Ap, ldap, Bp, ldbp, C, ldc, load_c, m0, m1); break;
    case 10: gemm_kernel<10, ARows>(kc, Ap, ldap, Bp, ldbp, C, ldc, load_c, m0, m1); break;
    case 9: gemm_kernel<9, ARows>(kc, Ap, ldap, Bp, ldbp, C, ldc, load_c, m0, m1); break;
    case 8: gemm_kernel<8, ARows>(kc, Ap, ldap, Bp, ldbp, C, ldc, load_c, m0, m1); break;
    case 7: gemm_kernel<7, ARows>(kc, Ap, ldap, Bp, ldbp, C, ldc, load_c, m0, m1); break;
    case 6: gemm_kernel<6, ARows>(kc, Ap, ldap, Bp, ldbp, C, ldc, load_c, m0, m1); break;
    case 5: gemm_kernel<5, ARows>(kc, Ap, ldap, Bp, ldbp, C, ldc, load_c, m0, m1); break;
    case 4: gemm_kernel<4, ARows>(kc, Ap, ldap, Bp, ldbp, C, ldc, load_c, m0, m1); break;
    case 3: gemm_kernel<3, ARows>(kc, Ap, ldap, Bp, ldbp, C, ldc, load_c, m0, m1); break;
    case 2: gemm_kernel<2, ARows>(kc, Ap, ldap, Bp, ldbp, C, ldc, load_c, m0, m1); break;
    default: gemm_kernel<1, ARows>(kc, Ap, ldap, Bp, ldbp, C, ldc, load_c, m0, m1); break;
  }
}

/// op(A) (M x K) packed for every k-block: block k0 at offset mpad * k0, as gemm_avx512 reads it.
template <bool TransA>
inline void gemm_pack_a_all(const float* A, Eigen::Index lda, Eigen::Index M, Eigen::Index K, float* dst) {
  const Eigen::Index mpad = (M + kGemmMr - 1) / kGemmMr * kGemmMr;
  for (Eigen::Index k0 = 0; k0 < K; k0 += kGemmKc)
    gemm_pack_a<TransA>(A, lda, M, k0, std::min(kGemmKc, K - k0), dst + mpad * k0);
}

/// op(B) (K x N) packed for k-block [k0, k0 + kc): panel j at offset j * kc of dst.
template <bool TransB>
inline void gemm_pack_b_block(const float* B, Eigen::Index ldb, Eigen::Index N, Eigen::Index k0, Eigen::Index kc,
                              float* dst) {
  for (Eigen::Index j = 0; j < N; j += kGemmNr) {
    if (TransB)
      gemm_pack_bt(B, ldb, k0, kc, j, std::min(kGemmNr, N - j), dst + j * kc);
    else
      gemm_pack_b(B, ldb, k0, kc, j, std::min(kGemmNr, N - j), dst + j * kc);
  }
}

template <bool TransA, bool TransB, class Epilogue>
inline void gemm_avx512(Eigen::Index M, Eigen::Index N, Eigen::Index K, const float* A, Eigen::Index lda,
                        const float* B, Eigen::Index ldb, float* C, Eigen::Index ldc, bool accumulate,
                        GemmScratch& scratch, const Epilogue& epilogue, const float* packed_a,
                        const float* packed_b, const float* reads, Eigen::Index ldr) {
  if (K == 0) {
    if (!accumulate)
      for (Eigen::Index i = 0; i < M; ++i) std::fill(C + i * ldc, C + i * ldc + N, 0.0f);
    for (Eigen::Index i = 0; i < M; i += kGemmMr) epilogue(i, Eigen::Index{0}, std::min(kGemmMr, M - i), N);
    return;
  }
  const Eigen::Index kc_max = std::min(K, kGemmKc);
  const Eigen::Index mpad = (M + kGemmMr - 1) / kGemmMr * kGemmMr;
  const Eigen::Index npad = (N + kGemmNr - 1) / kGemmNr * kGemmNr;
  float* abuf = nullptr;  // packing buffers, where the operand is not packed already
  float* bbuf = nullptr;
  // Operands read in place instead of packed, where packing would cost more than it saves:
  // - op(A) = Aᵀ always (its k-major rows are the storage's rows);
  // - A (row-major): the kernel broadcasts from 12 row pointers, the same loads as from a
  //   packed panel, and a row panel's 12 rows stay in L1 across its tiles, so packing would
  //   only add a transpose; unless C has more than two column panels and A's row stride is a
  //   multiple of 4 KiB (its 12 rows would then share one L1 set across those tiles). Measured
  //   for dz1 g1ᵀ and n1 dg1ᵀ: 1.07-1.10x alone, ~1.01x in training (docs/performance.md);
  // - B (not transposed) when C has at most 8 row panels: a packed panel would be read at most
  //   8 times (the kernel loads B's rows with their stride; the edge tile masks its loads),
  //   unless that stride is a multiple of 4 KiB: its rows would then share a few L1 sets
  //   (dim 128's C·dim = 1024 floats: measured 0.94x in training with it in place).
  // The arithmetic (and so every bit of C) is the same either way. Measured on the TRM's
  // shapes (docs/performance.md): 1.1-1.4x for the feature-mixing products and M = T products.
  // A B read in place comes from memory during the first row panel (then it is in L2): there,
  // each full tile prefetches the next column panel's rows.
  const bool a_in_place = TransA && !packed_a;
  const bool a_rows = !TransA && !packed_a && (N <= 2 * kGemmNr || lda % 1024 != 0);
  if (!packed_a && !a_in_place && !a_rows) {
    if (scratch.a.size() < static_cast<std::size_t>(mpad * kc_max))
      scratch.a.resize(static_cast<std::size_t>(mpad * kc_max));
    abuf = scratch.a.data();
  }
  const bool b_in_place = !TransB && !packed_b && M <= 8 * kGemmMr && ldb % 1024 != 0;
  if (!packed_b && !b_in_place) {  // every B panel of a k-block, 64-byte aligned inside the buffer
    const std::size_t bneed = static_cast<std::size_t>(kc_max * npad + 16);
    if (scratch.b.size() < bneed) scratch.b.resize(bneed);
    bbuf = scratch.b.data();
    while (reinterpret_cast<std::uintptr_t>(bbuf) % 64 != 0) ++bbuf;
  }

  // Order: per k-block, pack op(A) and B whole unless given packed or read in place (both stay in L2), then walk C row panel by row
  // panel, left to right, so that its rows are written sequentially (walking column panels
  // instead scatters the writes over every row of C: measured 1.4x slower for a (512, 1024) C).
  // The epilogue gets whole row panels: long contiguous rows for its elementwise loops.
  for (Eigen::Index k0 = 0; k0 < K; k0 += kGemmKc) {
    const Eigen::Index kc = std::min(kGemmKc, K - k0);
    const bool last = k0 + kc == K;
    const bool load = accumulate || k0 > 0;
    const float* ap = abuf;
    const float* bp = bbuf;
    if (packed_a)
      ap = packed_a + mpad * k0;
    else if (a_in_place)
      ap = A + k0 * lda;
    else if (a_rows)
      ap = A + k0;
    else
      gemm_pack_a<TransA>(A, lda, M, k0, kc, abuf);
    const Eigen::Index apanel = a_in_place ? 1 : a_rows ? lda : kc, arow = (a_in_place || a_rows) ? lda : kGemmMr;
    if (packed_b)
      bp = packed_b + npad * k0;
    else if (b_in_place)
      bp = B + k0 * ldb;
    else
      gemm_pack_b_block<TransB>(B, ldb, N, k0, kc, bbuf);
    const Eigen::Index bpanel = b_in_place ? 1 : kc, brow = b_in_place ? ldb : kGemmNr;
    for (Eigen::Index i = 0; i < M; i += kGemmMr) {
      const Eigen::Index mr = std::min(kGemmMr, M - i);
      for (Eigen::Index j = 0; j < N; j += kGemmNr) {
        const Eigen::Index nr = std::min(kGemmNr, N - j);
        float* c = C + i * ldc + j;
        const float* pf = nullptr;  // what the tile prefetches (gemm_kernel), if anything
        Eigen::Index pf_ld = 0, pf_steps = 0;
        if (b_in_place && i == 0 && j + kGemmNr < N) {  // B's next column panel
          pf = bp + (j + kGemmNr) * bpanel;
          pf_ld = brow;
          pf_steps = kc;
        } else if (reads && last && i + kGemmMr < M) {  // the epilogue's rows of the next row panel
          pf = reads + (i + kGemmMr) * ldr + j;
          pf_ld = ldr;
          pf_steps = std::min(kGemmMr, M - i - kGemmMr);
        }
        if (a_rows) {
          if (mr == kGemmMr && nr == kGemmNr)
            gemm_kernel_12x32<true>(kc, ap + i * apanel, arow, bp + j * bpanel, brow, c, ldc, load);
          else
            gemm_tile<true>(mr, nr, kc, ap + i * apanel, arow, bp + j * bpanel, brow, c, ldc, load);
        } else if (mr == kGemmMr && nr == kGemmNr)
          gemm_kernel_12x32(kc, ap + i * apanel, arow, bp + j * bpanel, brow, c, ldc, load, pf, pf_ld, pf_steps);
        else
          gemm_tile(mr, nr, kc, ap + i * apanel, arow, bp + j * bpanel, brow, c, ldc, load);
      }
      if (last) epilogue(i, Eigen::Index{0}, mr, N);  // the row panel (<= 12 rows) is final
    }
  }
}
#endif

}  // namespace detail

/// Packs op(A) (M x K; A stored M x K, or K x M with trans_a, row stride lda) for gemm calls
/// that share it. A no-op apart from the shape where gemm<S> runs on Eigen.
template <class S>
inline void pack_a(bool trans_a, Eigen::Index M, Eigen::Index K, const S* A, Eigen::Index lda, PackedOperand& out) {
  out.rows = M;
  out.cols = K;
  out.is_b = false;
  (void)trans_a;
  (void)A;
  (void)lda;
#if NANONAV_GEMM_AVX512
  if constexpr (std::is_same_v<S, float>) {
    const Eigen::Index mpad = (M + detail::kGemmMr - 1) / detail::kGemmMr * detail::kGemmMr;
    out.data.resize(static_cast<std::size_t>(mpad * K));
    if (trans_a)
      detail::gemm_pack_a_all<true>(A, lda, M, K, out.data.data());
    else
      detail::gemm_pack_a_all<false>(A, lda, M, K, out.data.data());
  }
#endif
}

/// Packs op(B) (K x N; B stored K x N, or N x K with trans_b, row stride ldb), as pack_a.
template <class S>
inline void pack_b(bool trans_b, Eigen::Index K, Eigen::Index N, const S* B, Eigen::Index ldb, PackedOperand& out) {
  out.rows = K;
  out.cols = N;
  out.is_b = true;
  (void)trans_b;
  (void)B;
  (void)ldb;
#if NANONAV_GEMM_AVX512
  if constexpr (std::is_same_v<S, float>) {
    const Eigen::Index npad = (N + detail::kGemmNr - 1) / detail::kGemmNr * detail::kGemmNr;
    out.data.resize(static_cast<std::size_t>(npad * K));
    for (Eigen::Index k0 = 0; k0 < K; k0 += detail::kGemmKc) {
      const Eigen::Index kc = std::min(detail::kGemmKc, K - k0);
      if (trans_b)
        detail::gemm_pack_b_block<true>(B, ldb, N, k0, kc, out.data.data() + npad * k0);
      else
        detail::gemm_pack_b_block<false>(B, ldb, N, k0, kc, out.data.data() + npad * k0);
    }
  }
#endif
}

/// C (M x N, row stride ldc) = op(A) op(B), or C += op(A) op(B) with `accumulate`; op(A) is A
/// (M x K, stride lda) or, with trans_a, the transpose of A stored (K x M, stride lda); op(B) is
/// B (K x N, stride ldb) or, with trans_b, the transpose of B stored (N x K, stride ldb).
/// Afterwards epilogue(i, j, rows, cols) is called on disjoint blocks of C that cover it (each
/// once, after its final value is in C), e.g. for bias + GELU while the block is in cache (the
/// kernel hands over row panels of up to 12 full rows; Eigen the whole of C). C must not
/// overlap A or B. packed_a / packed_b, if given, are op(A) / op(B) packed by pack_a / pack_b
/// from the same A / B (which must still be passed: the Eigen path reads them). reads: see
/// EpilogueReads.
template <class S, class Epilogue = NoEpilogue>
inline void gemm(bool trans_a, bool trans_b, Eigen::Index M, Eigen::Index N, Eigen::Index K, const S* A,
                 Eigen::Index lda, const S* B, Eigen::Index ldb, S* C, Eigen::Index ldc, bool accumulate,
                 GemmScratch& scratch, const Epilogue& epilogue = Epilogue{},
                 const PackedOperand* packed_a = nullptr, const PackedOperand* packed_b = nullptr,
                 EpilogueReads reads = {}) {
  NANONAV_ASSERT(!packed_a || (!packed_a->is_b && packed_a->rows == M && packed_a->cols == K));
  NANONAV_ASSERT(!packed_b || (packed_b->is_b && packed_b->rows == K && packed_b->cols == N));
#if NANONAV_GEMM_AVX512
  if constexpr (std::is_same_v<S, float>) {
    const float* pa = packed_a ? packed_a->data.data() : nullptr;
    const float* pb = packed_b ? packed_b->data.data() : nullptr;
    const float* rd = static_cast<const float*>(reads.data);
    const Eigen::Index ldr = reads.ld;
    if (trans_a && trans_b)
      detail::gemm_avx512<true, true>(M, N, K, A, lda, B, ldb, C, ldc, accumulate, scratch, epilogue, pa, pb, rd, ldr);
    else if (trans_a)
      detail::gemm_avx512<true, false>(M, N, K, A, lda, B, ldb, C, ldc, accumulate, scratch, epilogue, pa, pb, rd, ldr);
    else if (trans_b)
      detail::gemm_avx512<false, true>(M, N, K, A, lda, B, ldb, C, ldc, accumulate, scratch, epilogue, pa, pb, rd, ldr);
    else
      detail::gemm_avx512<false, false>(M, N, K, A, lda, B, ldb, C, ldc, accumulate, scratch, epilogue, pa, pb, rd, ldr);
    return;
  }
#endif
  (void)scratch;
  (void)reads;
  using Stride = Eigen::OuterStride<>;
  using CMap = Eigen::Map<const Mat<S>, 0, Stride>;
  Eigen::Map<Mat<S>, 0, Stride> c(C, M, N, Stride(ldc));
  auto product = [&](const auto& a) {
    if (trans_b) {
      const CMap b(B, N, K, Stride(ldb));
      if (accumulate)
        c.noalias() += a * b.transpose();
      else
        c.noalias() = a * b.transpose();
    } else {
      const CMap b(B, K, N, Stride(ldb));
      if (accumulate)
        c.noalias() += a * b;
      else
        c.noalias() = a * b;
    }
  };
  if (trans_a)
    product(CMap(A, K, M, Stride(lda)).transpose());
  else
    product(CMap(A, M, K, Stride(lda)));
  epilogue(Eigen::Index{0}, Eigen::Index{0}, M, N);
}

}  // namespace nanonav::nn
