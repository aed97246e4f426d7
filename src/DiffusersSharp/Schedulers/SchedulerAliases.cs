using System.Text.Json.Nodes;
using DiffusersSharp.Loading;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// Short scheduler names (<c>euler-a</c>, <c>dpm++2m-karras</c>, …) as the web UIs name them, each a diffusers class plus
/// the config settings that make it that sampler. Shared by the CLI's <c>--scheduler</c>, the generation service and the
/// server's <c>scheduler</c> field.
/// </summary>
public static class SchedulerAliases
{
    /// <summary>Short names: alias → (class, settings applied on top of the pipeline's scheduler config, as JSON values).</summary>
    public static readonly IReadOnlyDictionary<string, (string ClassName, (string Key, string Json)[] Settings)> Aliases =
        new Dictionary<string, (string, (string, string)[])>(StringComparer.OrdinalIgnoreCase)
        {
            ["ddpm"] = ("DDPMScheduler", []),
            ["ddim"] = ("DDIMScheduler", []),
            ["pndm"] = ("PNDMScheduler", []),
            ["lms"] = ("LMSDiscreteScheduler", []),
            ["euler"] = ("EulerDiscreteScheduler", []),
            ["euler-a"] = ("EulerAncestralDiscreteScheduler", []),
            ["heun"] = ("HeunDiscreteScheduler", []),
            ["dpm2"] = ("KDPM2DiscreteScheduler", []),
            ["dpm2-a"] = ("KDPM2AncestralDiscreteScheduler", []),
            ["dpm++2m"] = ("DPMSolverMultistepScheduler",
                [("algorithm_type", "\"dpmsolver++\""), ("solver_order", "2"), ("use_karras_sigmas", "false")]),
            ["dpm++2m-karras"] = ("DPMSolverMultistepScheduler",
                [("algorithm_type", "\"dpmsolver++\""), ("solver_order", "2"), ("use_karras_sigmas", "true")]),
            ["dpm++2m-sde"] = ("DPMSolverMultistepScheduler",
                [("algorithm_type", "\"sde-dpmsolver++\""), ("solver_order", "2"), ("use_karras_sigmas", "false")]),
            ["dpm++2m-sde-karras"] = ("DPMSolverMultistepScheduler",
                [("algorithm_type", "\"sde-dpmsolver++\""), ("solver_order", "2"), ("use_karras_sigmas", "true")]),
            ["dpm++2s"] = ("DPMSolverSinglestepScheduler", []),
            ["deis"] = ("DEISMultistepScheduler", []),
            ["unipc"] = ("UniPCMultistepScheduler", []),
            ["lcm"] = ("LCMScheduler", []),
        };

    /// <summary>
    /// The class an alias or a class name (any case) stands for, and the alias's settings (none for a class name);
    /// false when the name is neither.
    /// </summary>
    public static bool TryResolve(string nameOrAlias, out string className, out (string Key, string Json)[] settings)
    {
        ArgumentNullException.ThrowIfNull(nameOrAlias);
        if (Aliases.TryGetValue(nameOrAlias, out var a))
        {
            (className, settings) = a;
            return true;
        }
        settings = [];
        className = SchedulerFactory.KnownClasses.FirstOrDefault(k => string.Equals(k, nameOrAlias, StringComparison.OrdinalIgnoreCase))
                    ?? Aliases.Values.Select(v => v.ClassName)
                        .FirstOrDefault(k => string.Equals(k, nameOrAlias, StringComparison.OrdinalIgnoreCase))!;
        return className is not null;
    }

    /// <summary>"unknown scheduler 'x'; use a class (…) or an alias (…)": the message for a name <see cref="TryResolve"/> refused.</summary>
    public static string UnknownMessage(string nameOrAlias) =>
        $"unknown scheduler '{nameOrAlias}'; use a class ({string.Join(", ", SchedulerFactory.KnownClasses)}) " +
        $"or an alias ({string.Join(", ", Aliases.Keys)})";

    /// <summary>
    /// A new scheduler of the class <paramref name="nameOrAlias"/> names, built from <paramref name="config"/> (a
    /// pipeline's scheduler config) as diffusers' <c>from_config</c> does, with the alias's settings on top. An unknown
    /// name is a <see cref="DiffusersException"/> listing the classes and aliases.
    /// </summary>
    public static IScheduler Build(string nameOrAlias, DiffusersConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (!TryResolve(nameOrAlias, out var className, out var settings))
            throw new DiffusersException(UnknownMessage(nameOrAlias));
        if (!SchedulerFactory.KnownClasses.Contains(className))
            throw new DiffusersException(
                $"scheduler '{nameOrAlias}': {className} is not implemented in this build; available: {string.Join(", ", SchedulerFactory.KnownClasses)}");
        var scheduler = SchedulerFactory.FromConfig(className, config);
        if (settings.Length == 0) return scheduler;
        var obj = SchedulerConfigs.ToJsonObject((DiffusersConfig)scheduler.Config);
        scheduler.Dispose();   // only its config (from_config's) was needed
        foreach (var (key, json) in settings) obj[key] = JsonNode.Parse(json);
        obj["_class_name"] = className;
        return SchedulerFactory.FromJson(obj.ToJsonString(), $"scheduler '{nameOrAlias}' ({className})");
    }
}
