using System.Globalization;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;

namespace DiffusersSharp.Cli;

/// <summary>
/// Before a model is loaded, refuses a <c>generate</c> whose batch and image size need more memory than the machine
/// has. The estimate is a lower bound (the feature maps a UNet keeps for its skip connections and the three largest
/// the decoder holds at once, float32), so a run it lets through may still be large, but one it refuses could never
/// have finished. The message names the options and the most the machine allows.
/// </summary>
internal static class RunMemory
{
    /// <summary>An unconditional pipeline (DDPM, DDIM): the UNet runs at <c>sample_size</c>.</summary>
    public static void CheckUnconditional(string folder, int batch)
    {
        if (Read<UNet2DModelConfig>(folder, "unet") is not { SampleSize: { Length: > 0 } s, BlockOutChannels: { } boc } c
            || !ModelLimits.Plausible(boc, c.LayersPerBlock) || s.Any(x => x is <= 0 or > ModelLimits.MaxSampleSize)) return; // loading the model names the bad key
        long h = s[0], w = s.Length > 1 ? s[1] : s[0];
        double perImage = UNetMaps(boc, c.LayersPerBlock, h, w) + c.InChannels * h * w;
        Check(perImage, batch, $"--batch {batch} of {h}x{w} images", "a smaller --batch");
    }

    /// <summary>A Stable Diffusion pipeline: the UNet on the latents (twice, for guidance) and the VAE decoder at full size.</summary>
    public static void CheckStableDiffusion(string folder, int batch, int? height, int? width)
    {
        if (Read<UNet2DConditionModelConfig>(folder, "unet") is not { BlockOutChannels: { } boc, LayersPerBlock: { Length: > 0 } lpb } unet
            || !ModelLimits.Plausible(boc, lpb.Max()) || unet.SampleSize?.Any(x => x is <= 0 or > ModelLimits.MaxSampleSize) == true) return;
        if (Read<AutoencoderKLConfig>(folder, "vae") is not { BlockOutChannels: { } vboc } vaeConfig || !ModelLimits.Plausible(vboc, vaeConfig.LayersPerBlock)) return;
        long scale = 1L << Math.Clamp(vboc.Length - 1, 0, 16);
        long sample = unet.SampleSize is { Length: > 0 } s ? s[0] : 64;
        long h = height ?? sample * scale, w = width ?? sample * scale;
        double vae = 3.0 * h * w * Math.Max(vboc[0], vboc[Math.Min(1, vboc.Length - 1)]);
        double perImage = Math.Max(vae, 2 * UNetMaps(boc, lpb.Max(), h / scale, w / scale));
        Check(perImage, batch, $"--batch {batch} of {w}x{h} images (--width {w} --height {h})", "a smaller --batch or --width/--height");
    }

    /// <summary>Floats of the skip connections (layers + 1 per level) and three maps of the largest level.</summary>
    private static double UNetMaps(int[] channels, int layers, long h, long w)
    {
        double skips = 0, largest = 0;
        for (int l = 0; l < channels.Length; l++)
        {
            double map = (double)channels[l] * Math.Max(1, h >> l) * Math.Max(1, w >> l);
            skips += (layers + 1) * map;
            largest = Math.Max(largest, map);
        }
        return skips + 3 * largest;
    }

    private static void Check(double floatsPerImage, int batch, string what, string advice)
    {
        double bytes = floatsPerImage * 4 * batch;
        long machine = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        if (machine <= 0 || bytes <= machine) return;
        long most = (long)Math.Floor(machine / (floatsPerImage * 4));
        throw new UserException(string.Create(CultureInfo.InvariantCulture,
            $"{what} need at least {bytes / (1L << 30):0.#} GiB for the model's activations, more than this machine's {machine / (double)(1L << 30):0.#} GiB of memory; use {advice}{(most >= 1 ? $" (this lower bound alone rules out more than --batch {most} at this size)" : " (even one image of this size does not fit)")}"));
    }

    /// <summary>The component's config, or null when it is missing or unreadable (loading the model then reports why).</summary>
    private static T? Read<T>(string folder, string component) where T : DiffusersConfig
    {
        try
        {
            return ConfigJson.Read<T>(Path.Combine(folder, component, "config.json"));
        }
        catch (DiffusersException)
        {
            return null;
        }
    }
}
