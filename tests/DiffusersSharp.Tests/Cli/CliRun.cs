using DiffusersSharp.Cli;

namespace DiffusersSharp.Tests.Cli;

/// <summary>Runs the `diffusers` command line in-process (plain progress lines), capturing its output.</summary>
internal static class CliRun
{
    public static (int code, string stdout, string stderr) Run(params string[] args)
    {
        using var o = new StringWriter();
        using var e = new StringWriter();
        int code = CliApp.Run(args, o, e, plainProgress: true);
        return (code, o.ToString(), e.ToString());
    }
}
