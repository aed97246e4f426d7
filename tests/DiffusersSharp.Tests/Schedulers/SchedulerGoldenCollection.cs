namespace DiffusersSharp.Tests.Schedulers;

/// <summary>
/// The golden scheduler cases (golden B and the transcripts: <see cref="SchedulerGoldenTests"/>,
/// <see cref="SchedulerImg2ImgGoldenTests"/>, 1,272 test cases of many small scheduler ops) run alone, not beside
/// another test class. TorchSharp 0.107 does not keep the implicit <c>Scalar</c> of an op like <c>tensor * 0.5</c> alive
/// through the native call, so a collection started by another thread while this one is inside libtorch can finalize
/// it mid-call (libtorch then fails with "Expected false to be true … toFloat"; docs/ARCHITECTURE.md and
/// <c>Runtime/NoGcRegion.cs</c> describe the race). The test dispose scope holds tensors, not Scalars, and a test thread
/// allocates between its own native calls only, so with no other test running beside these the race cannot start here.
/// It was seen once in about ten runs of these cases while they ran beside other classes.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SchedulerGoldenCollection
{
    public const string Name = "scheduler golden cases";
}
