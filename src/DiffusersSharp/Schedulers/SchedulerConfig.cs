using System.Text.Json.Serialization;
using DiffusersSharp.Loading;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// Base of every scheduler's typed <c>scheduler_config.json</c> record. Besides the keys of
/// <see cref="DiffusersConfig"/>, it remembers which keys were absent when the config was read
/// (diffusers' <c>_use_default_values</c>): <c>XScheduler.FromConfig(other.Config)</c> drops those keys so
/// that the new class's own defaults apply, exactly as diffusers' <c>from_config</c> does.
/// </summary>
public abstract record SchedulerConfig : DiffusersConfig
{
    /// <summary>Keys that took the class default because the source config did not set them (not written to JSON).</summary>
    [JsonIgnore]
    public IReadOnlyList<string> DefaultedKeys { get; init; } = [];

    /// <summary><c>num_train_timesteps</c>: the length of the training noise schedule.</summary>
    [JsonIgnore]
    public int TrainTimesteps => TrainTimestepCount;

    /// <summary>
    /// The class's <c>num_train_timesteps</c> property, read by <see cref="TrainTimesteps"/>. Protected, so the JSON
    /// writer never sees it: a public override is serialized whatever the base declares (the saved configs carried a
    /// stray <c>"TrainTimesteps"</c> key until 2026-12-06).
    /// </summary>
    protected abstract int TrainTimestepCount { get; }
}
