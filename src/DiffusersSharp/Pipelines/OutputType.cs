namespace DiffusersSharp.Pipelines;

/// <summary>What a pipeline returns (diffusers' <c>output_type</c>).</summary>
public enum OutputType
{
    /// <summary>8-bit <see cref="Imaging.Image"/>s (diffusers' "pil", the default).</summary>
    Pil = 0,
    /// <summary>Same as <see cref="Pil"/>.</summary>
    Image = 0,
    /// <summary>A float32 NHWC tensor in [0, 1] (diffusers' "np": the numpy array it returns).</summary>
    Np = 1,
    /// <summary>A float32 NCHW tensor in [0, 1] (diffusers' "pt").</summary>
    Pt = 2,
    /// <summary>The final latents, not decoded (diffusers' "latent"; Stable Diffusion pipelines): in <c>ImagePipelineOutput.Tensor</c>.</summary>
    Latent = 3,
}
