namespace DiffusersSharp.Training;

/// <summary>
/// The arguments of diffusers' examples/unconditional_image_generation/train_unconditional.py (v0.25.1) that the
/// port supports, with its defaults, plus the model layout flags (block channels, layers, attention levels).
/// </summary>
public sealed record UnconditionalTrainingOptions
{
    public required string DataDir { get; init; }
    public required string OutputDir { get; init; }
    public int Resolution { get; init; } = 64;
    public bool CenterCrop { get; init; }
    public bool RandomFlip { get; init; }
    public bool SkipBadImages { get; init; } = true;
    public int BatchSize { get; init; } = 16;
    public int Epochs { get; init; } = 100;
    /// <summary>When set, the run length in optimisation steps (overrides <see cref="Epochs"/>).</summary>
    public long? MaxSteps { get; init; }
    public double LearningRate { get; init; } = 1e-4;
    public string LrScheduler { get; init; } = "cosine";
    public int LrWarmupSteps { get; init; } = 500;
    public int GradientAccumulationSteps { get; init; } = 1;
    public double AdamBeta1 { get; init; } = 0.95;
    public double AdamBeta2 { get; init; } = 0.999;
    public double AdamWeightDecay { get; init; } = 1e-6;
    public double AdamEpsilon { get; init; } = 1e-8;
    public double MaxGradNorm { get; init; } = 1.0;
    public bool UseEma { get; init; } = true;
    public double EmaInvGamma { get; init; } = 1.0;
    public double EmaPower { get; init; } = 3.0 / 4.0;
    public double EmaMaxDecay { get; init; } = 0.9999;
    public string PredictionType { get; init; } = "epsilon";
    public int NumTrainTimesteps { get; init; } = 1000;
    public string BetaSchedule { get; init; } = "linear";
    /// <summary>train_unconditional's layout: (128, 128, 256, 256, 512, 512).</summary>
    public int[] BlockOutChannels { get; init; } = [128, 128, 256, 256, 512, 512];
    public int LayersPerBlock { get; init; } = 2;
    /// <summary>Levels (0-based) with attention blocks; null = the second-to-last level, as the script.</summary>
    public int[]? AttentionLevels { get; init; }
    public int? NormNumGroups { get; init; }
    /// <summary>A pipeline folder / Hub id (its unet/) or a UNet folder to fine-tune instead of a fresh model.</summary>
    public string? InitFrom { get; init; }
    public int CheckpointEvery { get; init; } = 500;
    public int? KeepCheckpoints { get; init; }
    /// <summary>Resume from the latest checkpoint-N in <see cref="OutputDir"/>.</summary>
    public bool Resume { get; init; }
    public int SaveImagesEveryEpochs { get; init; } = 10;
    public int SaveModelEveryEpochs { get; init; } = 10;
    public int EvalBatchSize { get; init; } = 16;
    public int DdpmNumInferenceSteps { get; init; } = 1000;
    /// <summary>"no" or "bf16" (TorchSharp 0.107 has no autocast: bf16 is refused).</summary>
    public string MixedPrecision { get; init; } = "no";
    public long Seed { get; init; }
    /// <summary>Save the EMA weights (default) or the raw weights in the pipeline folder.</summary>
    public bool SaveEmaWeights { get; init; } = true;
}
