namespace DiffusersSharp.Tests.Fuzz;

/// <summary>The fuzz cases run alone (their memory bound reads the process's peak RSS).</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class FuzzCollection
{
    public const string Name = "CLI fuzz";
}
