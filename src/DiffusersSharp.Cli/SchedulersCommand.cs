using System.CommandLine;
using DiffusersSharp.Schedulers;

namespace DiffusersSharp.Cli;

/// <summary><c>diffusers schedulers</c>: every scheduler class, its aliases and its config keys with their defaults.</summary>
public static class SchedulersCommand
{
    /// <summary>Builds the command (options, arguments and handler) around <paramref name="ctx"/>.</summary>
    public static Command Create(CliContext ctx)
    {
        var cmd = new Command("schedulers", "List the scheduler classes, their --scheduler aliases and config keys (with defaults)");
        cmd.SetAction(_ => Execute(ctx));
        return cmd;
    }

    /// <summary>Prints each scheduler class with its <c>--scheduler</c> aliases and config keys; returns the exit code.</summary>
    public static int Execute(CliContext ctx)
    {
        var o = ctx.Out;
        foreach (var cls in SchedulerFactory.KnownClasses)
        {
            var aliases = SchedulerSelection.Aliases.Where(a => a.Value.ClassName == cls).Select(a => a.Key).ToList();
            o.WriteLine(aliases.Count > 0 ? $"{cls}  (aliases: {string.Join(", ", aliases)})" : cls);
            var type = SchedulerFactory.ConfigType(cls);
            var defaults = SchedulerConfigs.ToJsonObject((Loading.DiffusersConfig)Activator.CreateInstance(type)!);
            foreach (var key in SchedulerConfigs.KnownKeys(type))
                o.WriteLine($"  {key} = {defaults[key]?.ToJsonString() ?? "null"}");
        }
        var missing = SchedulerSelection.Aliases.Where(a => !SchedulerFactory.KnownClasses.Contains(a.Value.ClassName))
            .Select(a => $"{a.Key} ({a.Value.ClassName})").ToList();
        if (missing.Count > 0) o.WriteLine($"not implemented in this build: {string.Join(", ", missing)}");
        return CliApp.Ok;
    }
}
