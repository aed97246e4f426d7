using System.Globalization;
using System.Reflection;
using System.Text.Json.Serialization;
using DiffusersSharp.Loading;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// The checks every scheduler config gets, whatever its class, before a scheduler is built: values diffusers accepts
/// but that can only give NaN samples (a NaN anywhere, <c>beta_start</c> −1 or ∞, <c>trained_betas</c> 2.0 or −0.5),
/// and sizes that exhaust memory (<c>num_train_timesteps</c> 1e9). Run when a config is read (the message names the
/// file or the option it came from) and again by <see cref="SchedulerBase"/> for configs made in code.
/// </summary>
public static class SchedulerConfigValidation
{
    /// <summary>diffusers' schedulers use 1000; the table of betas and alphas is allocated at this length.</summary>
    public const int MaxTrainTimesteps = 100_000;

    /// <summary>
    /// Checks <paramref name="config"/>; <paramref name="source"/> (a file, an option, a class name) starts each message,
    /// <paramref name="filePath"/> is the file it was read from, when it was.
    /// </summary>
    public static void Validate(SchedulerConfig config, string source, string? filePath = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        try
        {
            Check(config, source);
        }
        catch (ConfigException e) when (filePath is not null)
        {
            throw new ConfigException(e.Message) { FilePath = filePath, Key = e.Key };
        }
    }

    private static void Check(SchedulerConfig config, string source)
    {
        var values = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var p in config.GetType().GetProperties(BindingFlags.Public | BindingFlags.Instance))
            if (p.GetCustomAttribute<JsonPropertyNameAttribute>()?.Name is { } key && p.GetIndexParameters().Length == 0)
                values[key] = p.GetValue(config);

        foreach (var (key, value) in values)
            if (value is double d && double.IsNaN(d))
                Fail(source, key, $"{key} must be a number, got NaN");

        int n = config.TrainTimesteps;
        if (n < 1 || n > MaxTrainTimesteps)
            Fail(source, "num_train_timesteps", $"num_train_timesteps must be between 1 and {MaxTrainTimesteps}, got {n}");
        var trained = values.GetValueOrDefault("trained_betas") as double[];
        if (trained is null)
        {
            foreach (var key in new[] { "beta_start", "beta_end" })
                if (values.GetValueOrDefault(key) is double b && !(b >= 0 && b < 1))
                    Fail(source, key, $"{key} must be a number in [0, 1), got {Fmt(b)}");
        }
        else
        {
            if (trained.Length != n && config is not IBetaScheduleConfig { HasTrainingBetas: false })
                Fail(source, "trained_betas", $"trained_betas has {trained.Length} values but num_train_timesteps is {n}");
            for (int i = 0; i < trained.Length; i++)
                if (!(trained[i] >= 0 && trained[i] <= 1))   // 1 only at the end of a zero-terminal-SNR schedule
                    Fail(source, "trained_betas", $"trained_betas[{i}] must be a number in [0, 1] (1 - beta is the fraction of the signal kept), got {Fmt(trained[i])}");
        }
        if (trained is null && values.GetValueOrDefault("beta_schedule") is "linear" or "scaled_linear" or "sigmoid"
            && values.GetValueOrDefault("beta_start") is double start && values.GetValueOrDefault("beta_end") is double end)
        {
            string schedule = (string)values["beta_schedule"]!;
            // diffusers builds either without a word: swapped bounds give a schedule no model was trained on, zero
            // bounds zero betas, alphas_cumprod 1 everywhere and steps that divide by 1 - alphas_cumprod = 0
            if (start > end)
                Fail(source, "beta_start", $"beta_start ({Fmt(start)}) must not be larger than beta_end ({Fmt(end)}): the {schedule} schedule runs from beta_start up to beta_end");
            if (end == 0)
                Fail(source, "beta_end", $"beta_end must be larger than 0: with beta_start and beta_end 0 the {schedule} schedule has every beta 0, no noise is ever added and the steps divide by 1 - alphas_cumprod = 0");
        }
        if (values.GetValueOrDefault("steps_offset") is int offset && (offset < 0 || offset >= n))
            Fail(source, "steps_offset", $"steps_offset must be between 0 and num_train_timesteps - 1 = {n - 1}, got {offset}");
        if (values.GetValueOrDefault("original_inference_steps") is int ois && (ois < 1 || ois > n))
            Fail(source, "original_inference_steps", $"original_inference_steps must be between 1 and num_train_timesteps = {n}, got {ois}");
        foreach (var key in new[] { "clip_sample_range", "sample_max_value", "timestep_scaling" })
            if (values.GetValueOrDefault(key) is double v && !(v > 0))
                Fail(source, key, $"{key} must be a positive number, got {Fmt(v)}");
        if (values.GetValueOrDefault("dynamic_thresholding_ratio") is double r && !(r > 0 && r <= 1))
            Fail(source, "dynamic_thresholding_ratio", $"dynamic_thresholding_ratio must be in (0, 1], got {Fmt(r)}");
        foreach (var key in new[] { "sigma_min", "sigma_max" })
            if (values.GetValueOrDefault(key) is double s && !(s > 0 && double.IsFinite(s)))
                Fail(source, key, $"{key} must be a finite positive number, got {Fmt(s)}");
        if (values.GetValueOrDefault("sigma_min") is double lo && values.GetValueOrDefault("sigma_max") is double hi && lo >= hi)
            Fail(source, "sigma_min", $"sigma_min ({Fmt(lo)}) must be smaller than sigma_max ({Fmt(hi)})");
    }

    private static string Fmt(double v) => v.ToString("R", CultureInfo.InvariantCulture);

    private static void Fail(string source, string key, string message) => throw new ConfigException($"{source}: config key '{key}': {message}") { Key = key };
}
