namespace DiffusersSharp.Models;

/// <summary>
/// The largest sizes a model config may ask for (configs beyond them are refused, naming the key and the limit). They
/// are far above any published diffusers model (SD XL: 1280 channels, 10 transformer layers, 128² latents), and exist so
/// that a corrupt or hostile config fails with a message instead of exhausting the machine's memory.
/// </summary>
public static class ModelLimits
{
    /// <summary>Channels of any block, input or output.</summary>
    public const int MaxChannels = 65536;

    /// <summary>Resnet (and transformer) layers per block.</summary>
    public const int MaxLayersPerBlock = 64;

    /// <summary>Down (and up) blocks of a UNet or VAE.</summary>
    public const int MaxBlocks = 12;

    /// <summary>Each side of <c>sample_size</c>.</summary>
    public const int MaxSampleSize = 16384;

    /// <summary>Rows of a class-embedding table.</summary>
    public const int MaxClassEmbeds = 1_000_000;

    /// <summary>Rows of a learned timestep table (and a scheduler's training schedule).</summary>
    public const int MaxTrainTimesteps = 100_000;

    /// <summary>Kernel size of the input and output convolutions.</summary>
    public const int MaxKernel = 31;

    /// <summary>True when every channel count is in 1..<see cref="MaxChannels"/> and the layer count in 1..<see cref="MaxLayersPerBlock"/>.</summary>
    public static bool Plausible(int[] channels, int layersPerBlock) =>
        channels.Length is > 0 and <= MaxBlocks && channels.All(c => c is > 0 and <= MaxChannels) && layersPerBlock is > 0 and <= MaxLayersPerBlock;
}
