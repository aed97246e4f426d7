using DiffusersSharp.Imaging;
using DiffusersSharp.Pipelines;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Generation;

/// <summary>
/// The cheapest preview of a Stable Diffusion run in progress: each pixel of the latents (4 channels, as the pipeline
/// holds them, already scaled by the VAE's <c>scaling_factor</c>) mapped to RGB by a fixed linear map of its latent space,
/// no VAE. diffusers 0.25.1 has no such map; the factors are the community's least-squares fits for the SD and the SDXL
/// VAE (the ones ComfyUI uses for its "latent2rgb" previews). One preview pixel per latent pixel (an eighth of the
/// image's size), enlarged to the image's size.
/// </summary>
public static class LatentRgbPreview
{
    /// <summary>Latent channel → (R, G, B) contribution, rows in channel order.</summary>
    public static readonly float[,] Factors =
    {
        { 0.3512f, 0.2297f, 0.3227f },
        { 0.3250f, 0.4974f, 0.2350f },
        { -0.2829f, 0.1762f, 0.2721f },
        { -0.2120f, -0.2616f, -0.7177f },
    };

    /// <summary>The SDXL VAE's latent channel → (R, G, B) contribution, rows in channel order.</summary>
    public static readonly float[,] XlFactors =
    {
        { 0.3920f, 0.4054f, 0.4549f },
        { -0.2634f, -0.0196f, 0.0653f },
        { 0.0568f, 0.1687f, -0.0755f },
        { -0.3112f, -0.2359f, -0.2076f },
    };

    /// <summary>The factors of <paramref name="space"/>: <see cref="Factors"/> (SD 1.x/2.x) or <see cref="XlFactors"/> (SDXL).</summary>
    public static float[,] FactorsFor(LatentSpace space) => space switch
    {
        LatentSpace.StableDiffusion => Factors,
        LatentSpace.StableDiffusionXL => XlFactors,
        _ => throw new ArgumentOutOfRangeException(nameof(space), space, "not a latent space"),
    };

    /// <summary>True when <paramref name="latents"/> (B, C, h, w) have the 4 channels the factors are for.</summary>
    public static bool Supports(Tensor latents) => latents.dim() == 4 && latents.shape[1] == Factors.GetLength(0);

    /// <summary>
    /// The preview of batch item <paramref name="index"/>: <c>rgb = latents · factors</c> (those of <paramref name="space"/>),
    /// mapped from [-1, 1] to 8 bits and enlarged <paramref name="upscale"/> times (nearest neighbour; the VAE's scale
    /// factor gives the image's size). The latents are left as they were.
    /// </summary>
    public static Image Preview(Tensor latents, int index = 0, int upscale = 8, LatentSpace space = LatentSpace.StableDiffusion)
    {
        var table = FactorsFor(space);
        if (upscale < 1) throw new ArgumentOutOfRangeException(nameof(upscale), upscale, "upscale must be at least 1");
        ArgumentNullException.ThrowIfNull(latents);
        if (!Supports(latents))
            throw new DiffusersException(
                $"LatentRgbPreview: expected latents of shape (batch, 4, height, width), got [{string.Join(", ", latents.shape)}]");
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var one = latents.detach()[index].to(float32, CPU);                    // (4, h, w)
        var factors = torch.tensor(Flat(table), [table.GetLength(0), 3]);      // (4, 3)
        var rgb = torch.einsum("chw,cr->hwr", one, factors);                    // (h, w, 3)
        var bytes = ((rgb + 1) * 127.5f).clamp(0, 255).round().to(uint8);
        bytes = bytes.repeat_interleave(upscale, 0).repeat_interleave(upscale, 1).contiguous();
        int h = (int)bytes.shape[0], w = (int)bytes.shape[1];
        return new Image(w, h, 3, bytes.data<byte>().ToArray());
    }

    private static float[] Flat(float[,] table)
    {
        var flat = new float[table.Length];
        int k = 0;
        foreach (var v in table) flat[k++] = v;
        return flat;
    }
}
