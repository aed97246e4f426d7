namespace DiffusersSharp.Tests.Fuzz;

/// <summary>
/// One fuzz case: a golden model copied into a <see cref="FuzzWorkspace"/>, one mutation of its files, and a
/// command line run in-process through <see cref="DiffusersSharp.Cli.CliApp.Run"/>.
/// </summary>
/// <param name="Name">What was changed, for the report (e.g. <c>unet/config.json norm_eps=NaN</c>).</param>
/// <param name="BaseModel">The golden model folder copied into the workspace (<c>tiny-ddpm</c>, <c>tiny-sd</c>).</param>
/// <param name="Mutate">Changes the workspace's files.</param>
/// <param name="Args">The command line, given the workspace.</param>
internal sealed record FuzzCase(string Name, string BaseModel, Action<FuzzWorkspace> Mutate, Func<FuzzWorkspace, string[]> Args)
{
    /// <summary>Words the error line may name instead of a path inside the workspace (the key or option changed).</summary>
    public string[] Names { get; init; } = [];

    public override string ToString() => Name;
}
