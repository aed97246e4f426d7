using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Support;
using DiffusersSharp.Tests.Training;
using DiffusersSharp.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.ScopeAudit;

/// <summary>
/// The trainer (a run with EMA, evaluation images and checkpoints, stopped and resumed), its EMA and its saved pipeline run with
/// no dispose scope open and leave no tensor made outside a scope (docs/ARCHITECTURE.md, "Tensor ownership";
/// <see cref="Support.ScopeAudit"/>).
/// </summary>
public class TrainingScopeAuditTests
{
    [Fact]
    public void TheTrainerRunsItsTensorWorkInADisposeScope()
    {
        using var dir = new TempDir();
        string data = TinyRuns.Cats(dir, 24);
        var options = TinyRuns.Options(data, Path.Combine(dir.Path, "out")) with
        {
            MaxSteps = 4,
            UseEma = true,
            CheckpointEvery = 2,
            SaveImagesEveryEpochs = 1,
            EvalBatchSize = 2,
            DdpmNumInferenceSteps = 2,
        };
        var audit = new Support.ScopeAudit();
        using var cts = new CancellationTokenSource();
        var stopAt2 = new SyncProgress(null, p => { if (p.Step == 2) cts.Cancel(); });
        audit.Call("UnconditionalTrainer.Train (stopped after step 2)", () => Assert.Throws<OperationCanceledException>(
            () => new UnconditionalTrainer(options, _ => { }).Train(stopAt2, cts.Token)), noGrad: false);
        audit.Call("UnconditionalTrainer.Train (resumed from checkpoint-2)", () => new UnconditionalTrainer(options with { Resume = true }, _ => { }).Train(),
            noGrad: false);
        Assert.True(File.Exists(Path.Combine(options.OutputDir, "unet", "diffusion_pytorch_model.safetensors")));
        audit.AssertAllScoped();
    }

    [Fact]
    public void TheEmaAndTheSavedPipelineRunTheirTensorWorkInADisposeScope()
    {
        using var dir = new TempDir();
        var config = UnconditionalTrainer.BuildConfig(TinyRuns.Options("x", "y"));
        using var unet = UNet2DModel.FromConfig(config);
        var audit = new Support.ScopeAudit();
        audit.Call("UnconditionalTrainer.InitWeights", () => UnconditionalTrainer.InitWeights(unet, 5));
        var parameters = unet.parameters().ToList();
        using var ema = audit.Call("EMAModel", () => new EMAModel(parameters, decay: 0.99, useEmaWarmup: true));
        audit.Call("EMAModel.Step", () => ema.Step(parameters));
        audit.Call("EMAModel.Step (again)", () => ema.Step(parameters));
        audit.Call("EMAModel.CopyTo", () => ema.CopyTo(parameters));
        var shadow = parameters.Select(p => p.detach().clone()).ToList();
        audit.Call("EMAModel.LoadShadow", () => ema.LoadShadow(shadow));
        var scheduler = new DDPMScheduler(new DDPMSchedulerConfig { NumTrainTimesteps = 50 });
        audit.Call("UnconditionalTrainer.SavePipeline", () => UnconditionalTrainer.SavePipeline(unet, scheduler, dir.Path));
        audit.AssertAllScoped();
    }
}
