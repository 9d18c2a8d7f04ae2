// nn::gemm (nn/gemm.hpp): the hand-written float kernel (AVX-512 builds) and the Eigen path
// against a double reference on edge shapes, strides, all four layouts, accumulation, and the
// epilogue contract (every entry of C visited once, after its final value is in C), and operands
// packed beforehand (the same bits as packing inside the call or reading the operand in place).
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include <nanonav/detail/rng.hpp>
#include <nanonav/nn/gemm.hpp>

using namespace nanonav;

namespace {

template <class S>
void check_shape(bool trans_a, bool trans_b, Eigen::Index M, Eigen::Index N, Eigen::Index K, bool accumulate,
                 nn::GemmScratch& scratch, Rng& rng, Eigen::Index pad = 3) {
  // pad: leading dimensions wider than the matrices, so that strides are honoured
  const Eigen::Index lda = (trans_a ? M : K) + pad, ldb = (trans_b ? K : N) + pad, ldc = N + pad;
  const Eigen::Index arows = trans_a ? K : M, brows = trans_b ? N : K;
  std::vector<S> A(static_cast<std::size_t>(std::max<Eigen::Index>(arows, 1) * lda)),
      B(static_cast<std::size_t>(std::max<Eigen::Index>(brows, 1) * ldb)), C(static_cast<std::size_t>(M * ldc));
  for (auto& v : A) v = static_cast<S>(2.0 * rng.uniform() - 1.0);
  for (auto& v : B) v = static_cast<S>(2.0 * rng.uniform() - 1.0);
  for (auto& v : C) v = static_cast<S>(2.0 * rng.uniform() - 1.0);
  const std::vector<S> C0 = C;
  std::vector<int> visits(static_cast<std::size_t>(M * N), 0);
  std::vector<S> seen(static_cast<std::size_t>(M * N), S(0));
  nn::gemm<S>(trans_a, trans_b, M, N, K, A.data(), lda, B.data(), ldb, C.data(), ldc, accumulate, scratch,
              [&](Eigen::Index i, Eigen::Index j, Eigen::Index rows, Eigen::Index cols) {
                for (Eigen::Index r = i; r < i + rows; ++r)
                  for (Eigen::Index q = j; q < j + cols; ++q) {
                    ++visits[static_cast<std::size_t>(r * N + q)];
                    seen[static_cast<std::size_t>(r * N + q)] = C[static_cast<std::size_t>(r * ldc + q)];
                  }
              });
  INFO("trans_a " << trans_a << " trans_b " << trans_b << " M " << M << " N " << N << " K " << K << " accumulate " << accumulate);
  int bad = 0, bad_visits = 0, bad_seen = 0, touched_pad = 0;
  for (Eigen::Index i = 0; i < M; ++i) {
    for (Eigen::Index j = 0; j < N; ++j) {
      double ref = accumulate ? static_cast<double>(C0[static_cast<std::size_t>(i * ldc + j)]) : 0.0, mag = std::abs(ref);
      for (Eigen::Index k = 0; k < K; ++k) {
        const double a = static_cast<double>(trans_a ? A[static_cast<std::size_t>(k * lda + i)] : A[static_cast<std::size_t>(i * lda + k)]);
        const double b = static_cast<double>(trans_b ? B[static_cast<std::size_t>(j * ldb + k)] : B[static_cast<std::size_t>(k * ldb + j)]);
        ref += a * b;
        mag += std::abs(a * b);
      }
      const double got = static_cast<double>(C[static_cast<std::size_t>(i * ldc + j)]);
      const double tol = (std::is_same_v<S, float> ? 2e-6 : 1e-14) * (mag + 1.0);
      if (!(std::abs(got - ref) <= tol)) ++bad;
      if (visits[static_cast<std::size_t>(i * N + j)] != 1) ++bad_visits;
      if (seen[static_cast<std::size_t>(i * N + j)] != C[static_cast<std::size_t>(i * ldc + j)]) ++bad_seen;
    }
    for (Eigen::Index j = N; j < ldc; ++j)
      if (C[static_cast<std::size_t>(i * ldc + j)] != C0[static_cast<std::size_t>(i * ldc + j)]) ++touched_pad;
  }
  CHECK(bad == 0);
  CHECK(bad_visits == 0);
  CHECK(bad_seen == 0);
  CHECK(touched_pad == 0);

  // The same product with op(A), op(B) or both packed beforehand: with the kernel the same
  // bits (Eigen's own path may round differently from one buffer alignment to another).
  const bool kernel = std::is_same_v<S, float> && nn::gemm_has_kernel();
  nn::PackedOperand pa, pb;
  nn::pack_a<S>(trans_a, M, K, A.data(), lda, pa);
  nn::pack_b<S>(trans_b, K, N, B.data(), ldb, pb);
  for (int which = 1; which < 4; ++which) {
    std::vector<S> C2 = C0;
    nn::gemm<S>(trans_a, trans_b, M, N, K, A.data(), lda, B.data(), ldb, C2.data(), ldc, accumulate, scratch,
                nn::NoEpilogue{}, which & 1 ? &pa : nullptr, which & 2 ? &pb : nullptr);
    INFO("prepacked: A " << (which & 1) << " B " << (which & 2));
    if (kernel) {
      CHECK(C2 == C);
    } else {
      double worst = 0;
      for (std::size_t i = 0; i < C.size(); ++i) worst = std::max(worst, std::abs(static_cast<double>(C2[i] - C[i])));
      CHECK(worst <= (std::is_same_v<S, float> ? 1e-5 : 1e-12) * (1 + static_cast<double>(K)));
    }
  }
}

template <class S>
void check_all_shapes() {
  Rng rng(77);
  nn::GemmScratch scratch;  // reused across shapes, as the TRM does: buffers only grow
  // M up to 96 reads a B (not transposed) in place, above it packs it (both sides of the
  // limit are here); a row-major A is read in place at these strides (see the 4 KiB case below)
  for (Eigen::Index M : {1, 5, 11, 12, 13, 25, 68, 97})
    for (Eigen::Index N : {1, 7, 16, 17, 32, 33, 64, 70})
      for (Eigen::Index K : {0, 1, 3, 15, 16, 17, 68, 256, 257, 600})
        for (int layout = 0; layout < 4; ++layout)
          for (bool accumulate : {false, true})
            check_shape<S>(layout & 1, layout & 2, M, N, K, accumulate, scratch, rng);
}

}  // namespace

TEST_CASE("gemm<float> matches a double reference on edge shapes, strides, all layouts", "[gemm]") {
  INFO("hand-written kernel in this build: " << nn::gemm_has_kernel());
  check_all_shapes<float>();
}

TEST_CASE("gemm<double> (the Eigen path the gradient checks use) matches the reference", "[gemm]") {
  check_all_shapes<double>();
}

TEST_CASE("gemm<float> on the TRM's token-mixing shapes", "[gemm]") {
  Rng rng(78);
  nn::GemmScratch scratch;
  // 8x8 maps: T = 68; micro-batch 8 of dim 48 and 128 (C*dim = 384, 1024); 4*dim hidden.
  for (Eigen::Index cd : {384, 1024}) {
    const Eigen::Index h = cd / 2;
    check_shape<float>(false, false, h, cd, 68, false, scratch, rng);   // W1 n1
    check_shape<float>(false, false, 68, cd, h, false, scratch, rng);   // W2 g1
    check_shape<float>(true, false, h, cd, 68, false, scratch, rng);    // W2ᵀ dz1
    check_shape<float>(true, false, 68, cd, h, false, scratch, rng);    // W1ᵀ dg1
    check_shape<float>(false, true, 68, h, cd, true, scratch, rng);     // dz1 g1ᵀ, n1 dg1ᵀ
  }
}

TEST_CASE("gemm<float> packs a row-major A whose row stride is a multiple of 4 KiB", "[gemm]") {
  // With more than two column panels of C such an A is packed rather than read in place (its
  // rows would share one L1 set); with at most two it is still read in place. Both paths, and
  // an A stored transposed at the same stride, against the double reference.
  Rng rng(79);
  nn::GemmScratch scratch;
  for (Eigen::Index N : {64, 70, 256})
    for (bool trans_b : {false, true})
      for (bool accumulate : {false, true}) {
        check_shape<float>(false, trans_b, 25, N, 1000, accumulate, scratch, rng, 24);  // lda = 1024
        check_shape<float>(true, trans_b, 25, N, 1000, accumulate, scratch, rng, 1024 - 25);  // lda = 1024
      }
}
