namespace DiffusersSharp.Loading.SingleFile;

/// <summary>How a tensor differs between the original layout and diffusers' (the same values, another shape or split).</summary>
public enum TensorChange
{
    /// <summary>The same tensor.</summary>
    None,

    /// <summary>A 1×1 convolution <c>[out, in, 1, 1]</c> in the original file, a linear <c>[out, in]</c> in diffusers
    /// (the VAE mid-block attention's q, k, v and proj_out); a <c>[out, in, 1]</c> conv1d is read the same way.</summary>
    Conv1x1ToLinear,

    /// <summary>Stored transposed (OpenCLIP's <c>text_projection</c> is <c>x @ P</c>, transformers' a linear <c>P.T</c>).</summary>
    Transpose,

    /// <summary>One original tensor, fused along dim 0, is several diffusers tensors (OpenCLIP's <c>in_proj_weight</c> =
    /// q, k, v projections).</summary>
    Split,
}
