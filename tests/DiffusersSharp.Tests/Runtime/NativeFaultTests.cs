using DiffusersSharp.Runtime;
using DiffusersSharp.Tests.Support;
using TorchSharp;

namespace DiffusersSharp.Tests.Runtime;

/// <summary>
/// Issue 11: no native fault and no native log noise on the main paths. Each model runs in a child process
/// (<see cref="NativeRun"/>), so that a fault fails the test (naming the run) instead of killing the test host.
/// </summary>
public class NativeFaultTests
{
    private static readonly TimeSpan ChildTimeout = TimeSpan.FromMinutes(6);

    /// <summary>fp32 and bf16, channels-last and NCHW, 1 and 2 threads, at <paramref name="size"/> (fp32 runs first: the child builds each model in fp32 and converts it once).</summary>
    private static IEnumerable<string> Matrix(string model, int size, int batch) =>
        from dtype in new[] { "fp32", "bf16" }
        from layout in new[] { "cl", "nchw" }
        from threads in new[] { 1, 2 }
        select $"{model}/{dtype}/{layout}/{threads}/{size}/{batch}";

    /// <summary>
    /// Every UNet and VAE the project ships or benchmarks, in every dtype × layout × thread count at a reduced
    /// resolution, and at full resolution in the layouts they default to (fp32/bf16 channels-last for UNet2DModel, the
    /// benchmark's configuration that died with SIGFPE; fp32 NCHW and bf16 channels-last for the SD UNet; fp32
    /// channels-last for the VAE, which the SD pipelines run in fp32). The seed's own model runs at its size, batch 1
    /// and 16 (README's command).
    /// </summary>
    public static TheoryData<string, string[]> ShippedModels => new()
    {
        { "ddpm-cats-32", [.. Interleave(Matrix("ddpm-cats-32", 32, 1), Matrix("ddpm-cats-32", 32, 16))] },
        { "ddpm-cat-256", [.. Matrix("ddpm-cat-256", 64, 1).Take(4), "ddpm-cat-256/fp32/cl/2/256/1",
            .. Matrix("ddpm-cat-256", 64, 1).Skip(4), "ddpm-cat-256/bf16/cl/2/256/1"] },
        { "sd15-unet", [.. Matrix("sd15-unet", 16, 2).Take(4), "sd15-unet/fp32/nchw/2/64/2",
            .. Matrix("sd15-unet", 16, 2).Skip(4), "sd15-unet/bf16/cl/2/64/2"] },
        { "sd15-vae", [.. Matrix("sd15-vae", 64, 1).Take(4), "sd15-vae/fp32/cl/2/512/1", .. Matrix("sd15-vae", 64, 1).Skip(4)] },
    };

    private static IEnumerable<string> Interleave(IEnumerable<string> a, IEnumerable<string> b) => a.Zip(b).SelectMany(p => new[] { p.First, p.Second });

    [Theory]
    [MemberData(nameof(ShippedModels))]
    public void ShippedModels_RunInEveryDtypeLayoutAndThreadCount_WithoutANativeFault(string model, string[] specs)
    {
        var r = ChildProcess.Run(ChildTimeout, [NativeRun.Verb, .. specs]);
        Assert.True(r.ExitCode == 0, $"{model}: {r.Describe()}");
        foreach (var spec in specs) Assert.Contains($"ok {spec} ", r.Stdout);
    }

    /// <summary>
    /// The fault itself: where oneDNN sees (next to) no data cache, creating a channels-last 1×1 convolution of one of
    /// oneDNN's special-cased channel pairs divides by zero. The injected state reproduces it with
    /// torch.nn.functional.conv2d (fp32 on 2 threads, bf16 on 1), which proves the injection; the next test shows that
    /// our models do not take that path.
    /// </summary>
    [Theory]
    [InlineData("conv-1024-512/fp32/cl/2/8/1")]
    [InlineData("conv-1024-512/bf16/cl/1/16/2")]
    public void OnACpuReportingNoCaches_TheRawOneDnnConvolutionDiesOfSigfpe(string spec)
    {
        var r = ChildProcess.Run(ChildTimeout, NativeRun.Verb, "--shrink-onednn-caches", spec);
        Assert.True(r.Signal == 8, $"expected SIGFPE: {r.Describe()}");
        Assert.Equal(spec, r.UnfinishedRun);
    }

    [Fact]
    public void OnACpuReportingNoCaches_EveryFaultingPairAndTheDdpmUNetRun()
    {
        var pairs = new[] { (1024, 512), (1024, 2048), (256, 1024), (512, 1024), (512, 2048) };
        string[] specs =
        [
            .. pairs.Select(p => $"pointwise-{p.Item1}-{p.Item2}/fp32/cl/2/8/1"),
            .. pairs.Select(p => $"pointwise-{p.Item1}-{p.Item2}/bf16/cl/1/8/2"),
            "ddpm-cat-256/fp32/cl/2/32/1", "ddpm-cat-256/bf16/cl/1/32/1",
        ];
        var r = ChildProcess.Run(ChildTimeout, [NativeRun.Verb, "--shrink-onednn-caches", .. specs]);
        Assert.True(r.ExitCode == 0, r.Describe());
        Assert.Contains("-> 1 byte", r.Stdout);
        foreach (var spec in specs) Assert.Contains($"ok {spec} ", r.Stdout);
    }

    private static readonly string[] NativePathSpecs =
        ["ddpm-cats-32/fp32/nchw/1/32/1", "ddpm-cats-32/fp32/cl/1/32/1", "ddpm-cats-32/fp32/nchw/2/32/1"];

    /// <summary>
    /// Where NNPACK cannot initialise, libtorch logged "Could not initialize NNPACK" for every fp32 convolution
    /// oneDNN declines (batch 1: 1×1 kernels on one thread, small inputs): the control child, with NNPACK switched
    /// back on, shows the noise; with the library's set-up stderr stays clean.
    /// </summary>
    [Fact]
    public void WhereNnpackCannotInitialise_TheSeedModelLogsNothing()
    {
        var control = ChildProcess.Run(ChildTimeout, [NativeRun.Verb, "--fail-nnpack-init", "--nnpack-on", .. NativePathSpecs]);
        Assert.True(control.ExitCode == 0, control.Describe());
        int noise = control.Stderr.Split('\n').Count(l => l.Contains("Could not initialize NNPACK"));
        Assert.True(noise >= 3 * NativePathSpecs.Length, $"the control run should log the NNPACK warning per convolution; it logged {noise}:\n{control.Stderr}");

        var r = ChildProcess.Run(ChildTimeout, [NativeRun.Verb, "--fail-nnpack-init", .. NativePathSpecs]);
        Assert.True(r.ExitCode == 0, r.Describe());
        Assert.Contains("nnpack-enabled False", r.Stdout);
        Assert.DoesNotContain("NNPACK", r.Stderr);
        Assert.Equal("", r.Stderr.Trim());
    }

    [Fact]
    public void NnpackIsOffInThisProcess()
    {
        using (torch.inference_mode()) { using var y = torch.nn.functional.conv2d(torch.ones(1, 2, 4, 4), torch.ones(2, 2, 1, 1)); }
        Assert.Equal(false, NativeSetup.LibTorchNnpackEnabled());
        Assert.Contains("nnpack: off", NativeSetup.Summary);
    }
}
