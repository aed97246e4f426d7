using System.Globalization;
using System.Reflection;
using System.Text.Json.Serialization;
using DiffusersSharp.Loading;

namespace DiffusersSharp.Models;

/// <summary>
/// The limits every model config is held to before a module is built, beyond what diffusers itself checks: values a
/// model cannot be built or run with (null lists, 0 attention heads, a group count that does not divide the channels)
/// and sizes that would exhaust memory instead of failing (2^31 channels, 100 000 layers). The limits are generous
/// (the largest published diffusers models use a few thousand channels and at most a few layers per block) and each
/// message states the one it hit. Violations are <see cref="ConfigException"/>s naming the file and the key.
/// </summary>
internal static class ConfigRanges
{
    public const int MaxChannels = ModelLimits.MaxChannels;
    public const int MaxLayersPerBlock = ModelLimits.MaxLayersPerBlock;
    public const int MaxBlocks = ModelLimits.MaxBlocks;
    public const int MaxSampleSize = ModelLimits.MaxSampleSize;
    public const int MaxClassEmbeds = ModelLimits.MaxClassEmbeds;
    public const int MaxTrainTimesteps = ModelLimits.MaxTrainTimesteps;
    public const int MaxKernel = ModelLimits.MaxKernel;

    /// <summary>An integer in [<paramref name="min"/>, <paramref name="max"/>].</summary>
    public static void Int(string source, string key, long value, long min, long max, string? what = null)
    {
        if (value < min || value > max)
            Fail(source, key, $"{what ?? key} must be between {min.ToString(CultureInfo.InvariantCulture)} and {max.ToString(CultureInfo.InvariantCulture)}, got {value.ToString(CultureInfo.InvariantCulture)}");
    }

    /// <summary>Every entry of a list in [<paramref name="min"/>, <paramref name="max"/>].</summary>
    public static void Ints(string source, string key, int[]? values, long min, long max)
    {
        if (values is null) Fail(source, key, $"{key} must not be null");
        for (int i = 0; i < values!.Length; i++) Int(source, key, values[i], min, max, $"{key}[{i}]");
    }

    /// <summary>A list that is present, of 1..<see cref="MaxBlocks"/> non-null entries.</summary>
    public static void List<T>(string source, string key, T[]? values, int minLength = 1)
    {
        if (values is null) Fail(source, key, $"{key} must be a list, not null");
        if (values!.Length < minLength || values.Length > MaxBlocks)
            Fail(source, key, $"{key} must hold between {minLength} and {MaxBlocks} entries, got {values.Length}");
        for (int i = 0; i < values.Length; i++)
            if (values[i] is null) Fail(source, key, $"{key}[{i}] is null");
    }

    public static void NotNull(string source, string key, object? value)
    {
        if (value is null) Fail(source, key, $"{key} must not be null");
    }

    /// <summary>
    /// Every floating-point key of the config (dropout, eps, scale factors, …) must be a finite number: a NaN or an
    /// infinity there only ever turns the output into NaN.
    /// </summary>
    public static void AllFinite(DiffusersConfig config, string source)
    {
        foreach (var p in config.GetType().GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            if (p.PropertyType != typeof(double) && p.PropertyType != typeof(double?) && p.PropertyType != typeof(float)) continue;
            var key = p.GetCustomAttribute<JsonPropertyNameAttribute>()?.Name;
            if (key is null) continue;
            double? v = p.GetValue(config) switch { double d => d, float f => f, _ => null };
            if (v is { } x && !double.IsFinite(x))
                Fail(source, key, $"{key} must be a finite number, got {Fmt(x)}");
        }
    }

    /// <summary>A number in (0, <paramref name="max"/>] (an epsilon, a scale).</summary>
    public static void Positive(string source, string key, double value, double max = double.MaxValue)
    {
        if (!(value > 0) || value > max)
            Fail(source, key, $"{key} must be a positive number{(max < double.MaxValue ? $" of at most {Fmt(max)}" : "")}, got {Fmt(value)}");
    }

    /// <summary>A number in [0, 1] (a dropout probability).</summary>
    public static void Probability(string source, string key, double value)
    {
        if (!(value >= 0 && value <= 1)) Fail(source, key, $"{key} must be between 0 and 1, got {Fmt(value)}");
    }

    /// <summary>A finite number other than 0 (an output scale factor that outputs are divided by).</summary>
    public static void NonZero(string source, string key, double value)
    {
        if (!double.IsFinite(value) || value == 0) Fail(source, key, $"{key} divides the block outputs: it must be a finite number other than 0, got {Fmt(value)}");
    }

    /// <summary>
    /// <c>sample_size</c> (one int or [height, width]): each side in 1..<see cref="MaxSampleSize"/>. Not a multiple of the
    /// UNet's downsampling factor is no config error, as in diffusers (the size only sets a pipeline's default; a UNet
    /// says at its forward pass whether it runs a size).
    /// </summary>
    public static void SampleSize(string source, int[]? sampleSize, string key = "sample_size")
    {
        if (sampleSize is null) return;
        if (sampleSize.Length is not (1 or 2)) Fail(source, key, $"{key} must be one integer or [height, width], got {sampleSize.Length} values");
        foreach (var s in sampleSize) Int(source, key, s, 1, MaxSampleSize);
    }

    /// <summary>The downsampling of a UNet's down blocks needs padding 0 (diffusers pads right/bottom itself) or 1.</summary>
    public static void DownsamplePadding(string source, int padding)
    {
        if (padding is not (0 or 1))
            Fail(source, "downsample_padding", $"downsample_padding must be 0 or 1 (other values change the feature map sizes and the skip connections no longer fit), got {padding}");
    }

    /// <summary>norm_num_groups a positive integer dividing every block_out_channels value (GroupNorm's requirement).</summary>
    public static void NormGroups(string source, int? groups, int[] blockOutChannels)
    {
        if (groups is not int g || g <= 0)
            Fail(source, "norm_num_groups", $"norm_num_groups must be a positive integer, got {groups?.ToString() ?? "null"}");
        else
            foreach (var ch in blockOutChannels)
                if (ch <= 0 || ch % g != 0)
                    Fail(source, "block_out_channels", $"block_out_channels value {ch} is not divisible by norm_num_groups {g}");
    }

    public static string Fmt(double v) => v.ToString("R", CultureInfo.InvariantCulture);

    public static void Fail(string source, string key, string message) =>
        throw new ConfigException($"{source}: config key '{key}': {message}") { FilePath = source, Key = key };
}
