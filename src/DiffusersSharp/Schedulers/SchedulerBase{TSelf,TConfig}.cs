using DiffusersSharp.Loading;
using TorchSharp;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// What every scheduler class shares about its config, written once: the typed config record (its
/// <c>_class_name</c> set to the class), the betas built from it, <c>FromConfig</c> / <c>FromPretrained</c>
/// returning the class itself, and <c>SavePretrained</c>. A scheduler class is
/// <c>sealed class XScheduler : SchedulerBase&lt;XScheduler, XSchedulerConfig&gt;</c> with a constructor taking its
/// config (its work in <see cref="InitCore"/>), plus one line in <see cref="SchedulerFactory"/>'s registry.
/// </summary>
/// <typeparam name="TSelf">The scheduler class; its C# name is diffusers' class name.</typeparam>
/// <typeparam name="TConfig">Its <c>scheduler_config.json</c> record.</typeparam>
public abstract class SchedulerBase<TSelf, TConfig> : SchedulerBase
    where TSelf : SchedulerBase<TSelf, TConfig>
    where TConfig : SchedulerConfig, IBetaScheduleConfig, new()
{
    /// <summary>
    /// Stores <paramref name="config"/> (the class defaults when null) under this class's name, builds the betas and runs
    /// the class's <see cref="InitCore"/>, in one dispose scope. A config refused on the way (by the checks of the base or
    /// of the class) frees every tensor built so far before the exception leaves: the one place a failed construction is
    /// cleaned up, for every class (docs/ARCHITECTURE.md, "Tensor ownership").
    /// <paramref name="extraBetaSchedules"/>: the beta schedules this class accepts beyond linear, scaled_linear and
    /// squaredcos_cap_v2 (DDPM: sigmoid; Heun: exp).
    /// </summary>
    protected SchedulerBase(TConfig? config, params string[] extraBetaSchedules)
    {
        TypedConfig = (TConfig)((SchedulerConfig)(config ?? new TConfig()) with { ClassName = typeof(TSelf).Name });
        try
        {
            using var scope = torch.NewDisposeScope();
            InitBetas(TypedConfig, extraBetaSchedules);
            InitCore();
        }
        catch
        {
            Dispose();   // the tables (and whatever the class had built) now, not when the GC finalizes them
            throw;
        }
    }

    /// <summary>
    /// The class's constructor work once the betas exist (diffusers' <c>__init__</c> after them): the checks of its own
    /// config keys and its initial timesteps or sigmas. Called by the base constructor (before the class's constructor
    /// body), in its dispose scope, so that a refusal frees what was built. Nothing by default.
    /// </summary>
    protected virtual void InitCore() { }

    /// <summary>diffusers' class name (the C# class name).</summary>
    public sealed override string ClassName => typeof(TSelf).Name;

    /// <summary>The typed config the scheduler was built from.</summary>
    public TConfig TypedConfig { get; protected set; }

    /// <inheritdoc/>
    public sealed override SchedulerConfig Config => TypedConfig;

    /// <summary>
    /// diffusers' <c>XScheduler.from_config(other.config)</c>: this class from its own config, or from any other
    /// scheduler's (keys the other took by default are dropped, unknown keys kept aside, absent keys take this class's
    /// defaults).
    /// </summary>
    public static TSelf FromConfig(DiffusersConfig other) => (TSelf)SchedulerFactory.FromConfig(typeof(TSelf).Name, other);

    /// <summary>
    /// Loads the <c>scheduler_config.json</c> of <paramref name="idOrPath"/> (a folder, a Hub id or the file itself) as
    /// <see cref="SchedulerFactory.ReadConfigFile"/> finds it, and builds this class from it.
    /// </summary>
    public static TSelf FromPretrained(string idOrPath, string? subfolder = null, LoadOptions? options = null) =>
        FromConfig(SchedulerFactory.ReadConfigFile(idOrPath, subfolder, options));

    /// <inheritdoc/>
    public sealed override void SavePretrained(string directory)
    {
        Directory.CreateDirectory(directory);
        // diffusers' to_json_string stamps the writing library's version, whatever the loaded config said.
        var config = (TConfig)((SchedulerConfig)TypedConfig with { DiffusersVersion = ModelLoading.DiffusersVersion });
        ConfigJson.Write(config, Path.Combine(directory, "scheduler_config.json"));
    }
}
