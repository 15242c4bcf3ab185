//! Loops compiled for the CPU's widest vectors, chosen at run time (the
//! build targets plain x86-64): the encoder's element-wise steps and the
//! vector store's dot products.

/// `fn $name(args) -> T` runs `$body(args)` compiled for the widest vectors
/// the CPU has: the body (an `#[inline(always)]` loop) is inlined into a copy
/// for AVX-512 and one for AVX2, which the compiler vectorizes for them; the
/// CPU's features pick the copy at run time.
macro_rules! vectorized {
    (fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty = $body:ident) => {
        fn $name($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn wide($($arg: $ty),*) -> $ret {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn narrow($($arg: $ty),*) -> $ret {
                    $body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512F (checked just above).
                    return unsafe { wide($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has AVX2 and FMA (checked just above).
                    return unsafe { narrow($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}

/// Fold `values` with `op` in 16 independent lanes, then the lanes: a plain
/// running sum cannot be reordered, so it would not vectorize.
#[inline(always)]
pub(crate) fn lanes(values: &[f32], start: f32, op: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [start; 16];
    let chunks = values.chunks_exact(16);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (lane, &value) in acc.iter_mut().zip(chunk) {
            *lane = op(*lane, value);
        }
    }
    acc.into_iter().chain(rest.iter().copied()).fold(start, &op)
}

/// The dot product in 16 lanes; `b` is f32 or int8 (before its scale).
#[inline(always)]
fn dot_body<T: Copy + Into<f32>>(a: &[f32], b: &[T]) -> f32 {
    let mut acc = [0f32; 16];
    let (a_chunks, b_chunks) = (a.chunks_exact(16), b.chunks_exact(16));
    let rest: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, &y)| x * y.into())
        .sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for ((lane, x), &y) in acc.iter_mut().zip(x).zip(y) {
            *lane += x * y.into();
        }
    }
    acc.iter().sum::<f32>() + rest
}

vectorized!(fn dot_vectorized(a: &[f32], b: &[f32]) -> f32 = dot_body);
vectorized!(fn dot_i8_vectorized(a: &[f32], b: &[i8]) -> f32 = dot_body);

/// The dot product of two vectors of one length.
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    dot_vectorized(a, b)
}

/// The dot product of an f32 vector and an int8 one (before its scale).
pub(crate) fn dot_i8(a: &[f32], b: &[i8]) -> f32 {
    dot_i8_vectorized(a, b)
}
