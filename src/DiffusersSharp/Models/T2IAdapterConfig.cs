using System.Text.Json.Serialization;
using DiffusersSharp.Loading;

namespace DiffusersSharp.Models;

/// <summary>
/// The <c>config.json</c> of a diffusers <c>T2IAdapter</c> (models/adapter.py, v0.25.1): every argument of its
/// <c>__init__</c>, with diffusers' default. Checked when a model is built (<see cref="T2IAdapter.FromConfig"/>).
/// </summary>
public sealed record T2IAdapterConfig : DiffusersConfig
{
    /// <summary>The adapter types diffusers 0.25.1 knows (<c>adapter_type</c>).</summary>
    public static readonly IReadOnlyList<string> AdapterTypes = ["full_adapter", "full_adapter_xl", "light_adapter"];

    /// <summary><c>in_channels</c>: channels of the control image (3: RGB, 1: greyscale).</summary>
    [JsonPropertyName("in_channels")] public int InChannels { get; init; } = 3;

    /// <summary>
    /// <c>channels</c>: the channels of each block's output. full_adapter and full_adapter_xl give one state per entry;
    /// light_adapter one per entry and one more (the last width, half the size).
    /// </summary>
    [JsonPropertyName("channels")] public int[] Channels { get; init; } = [320, 640, 1280, 1280];

    /// <summary><c>num_res_blocks</c>: resnet blocks in each adapter block.</summary>
    [JsonPropertyName("num_res_blocks")] public int NumResBlocks { get; init; } = 2;

    /// <summary><c>downscale_factor</c>: the pixel-unshuffle factor the control image is first folded by.</summary>
    [JsonPropertyName("downscale_factor")] public int DownscaleFactor { get; init; } = 8;

    /// <summary><c>adapter_type</c>: "full_adapter" (SD 1.x/2.x), "full_adapter_xl" (SDXL) or "light_adapter".</summary>
    [JsonPropertyName("adapter_type")] public string AdapterType { get; init; } = "full_adapter";
}
