namespace DiffusersSharp.Training;

/// <summary>
/// The arguments of diffusers' examples/unconditional_image_generation/train_unconditional.py (v0.25.1) that the
/// port supports, with its defaults, plus the model layout flags (block channels, layers, attention levels).
/// </summary>
public sealed record UnconditionalTrainingOptions
{
    /// <summary><c>--train_data_dir</c>: the folder of training images.</summary>
    public required string DataDir { get; init; }
    /// <summary><c>--output_dir</c>: where the pipeline, checkpoints and sample images are written.</summary>
    public required string OutputDir { get; init; }
    /// <summary><c>--resolution</c>: the square size images are resized (and cropped) to.</summary>
    public int Resolution { get; init; } = 64;
    /// <summary><c>--center_crop</c>: crop the centre after resizing instead of a random crop.</summary>
    public bool CenterCrop { get; init; }
    /// <summary><c>--random_flip</c>: flip images horizontally at random.</summary>
    public bool RandomFlip { get; init; }
    /// <summary>Skip images that cannot be decoded (with a log line) instead of stopping the run.</summary>
    public bool SkipBadImages { get; init; } = true;
    /// <summary><c>--train_batch_size</c>: images per optimisation step (before gradient accumulation).</summary>
    public int BatchSize { get; init; } = 16;
    /// <summary><c>--num_epochs</c>: passes over the data set.</summary>
    public int Epochs { get; init; } = 100;
    /// <summary>When set, the run length in optimisation steps (overrides <see cref="Epochs"/>).</summary>
    public long? MaxSteps { get; init; }
    /// <summary><c>--learning_rate</c>: the AdamW learning rate after warm-up.</summary>
    public double LearningRate { get; init; } = 1e-4;
    /// <summary>
    /// <c>--lr_scheduler</c>: "constant", "constant_with_warmup", "linear" or "cosine" (diffusers'
    /// <c>get_scheduler</c>).
    /// </summary>
    public string LrScheduler { get; init; } = "cosine";
    /// <summary><c>--lr_warmup_steps</c>: optimisation steps of linear warm-up.</summary>
    public int LrWarmupSteps { get; init; } = 500;
    /// <summary><c>--gradient_accumulation_steps</c>: batches summed before each optimiser step.</summary>
    public int GradientAccumulationSteps { get; init; } = 1;
    /// <summary><c>--adam_beta1</c>: AdamW's first-moment decay.</summary>
    public double AdamBeta1 { get; init; } = 0.95;
    /// <summary><c>--adam_beta2</c>: AdamW's second-moment decay.</summary>
    public double AdamBeta2 { get; init; } = 0.999;
    /// <summary><c>--adam_weight_decay</c>: AdamW's decoupled weight decay.</summary>
    public double AdamWeightDecay { get; init; } = 1e-6;
    /// <summary><c>--adam_epsilon</c>: AdamW's epsilon.</summary>
    public double AdamEpsilon { get; init; } = 1e-8;
    /// <summary>
    /// Gradients are clipped to this global L2 norm (the script's <c>accelerator.clip_grad_norm_</c>, 1.0);
    /// <see cref="double.PositiveInfinity"/>: no clipping, as torch's <c>clip_grad_norm_</c> takes it.
    /// </summary>
    public double MaxGradNorm { get; init; } = 1.0;
    /// <summary>
    /// <c>--use_ema</c>: keep an exponential moving average of the weights (<see cref="EMAModel"/>).
    /// </summary>
    public bool UseEma { get; init; } = true;
    /// <summary><c>--ema_inv_gamma</c>: the EMA warm-up's inverse gamma.</summary>
    public double EmaInvGamma { get; init; } = 1.0;
    /// <summary><c>--ema_power</c>: the EMA warm-up's power.</summary>
    public double EmaPower { get; init; } = 3.0 / 4.0;
    /// <summary><c>--ema_max_decay</c>: the largest EMA decay.</summary>
    public double EmaMaxDecay { get; init; } = 0.9999;
    /// <summary><c>--prediction_type</c>: what the UNet learns to predict: "epsilon" or "sample".</summary>
    public string PredictionType { get; init; } = "epsilon";
    /// <summary><c>--ddpm_num_steps</c>: the DDPM scheduler's training timesteps.</summary>
    public int NumTrainTimesteps { get; init; } = 1000;
    /// <summary><c>--ddpm_beta_schedule</c>: the DDPM scheduler's beta schedule.</summary>
    public string BetaSchedule { get; init; } = "linear";
    /// <summary>train_unconditional's layout: (128, 128, 256, 256, 512, 512).</summary>
    public int[] BlockOutChannels { get; init; } = [128, 128, 256, 256, 512, 512];
    /// <summary>Resnets per down block of a fresh UNet (the script's 2).</summary>
    public int LayersPerBlock { get; init; } = 2;
    /// <summary>Levels (0-based) with attention blocks; null = the second-to-last level, as the script.</summary>
    public int[]? AttentionLevels { get; init; }
    /// <summary>Groups of a fresh UNet's GroupNorms; null: 32.</summary>
    public int? NormNumGroups { get; init; }
    /// <summary>A pipeline folder / Hub id (its unet/) or a UNet folder to fine-tune instead of a fresh model.</summary>
    public string? InitFrom { get; init; }
    /// <summary><c>--checkpointing_steps</c>: a training checkpoint every this many optimisation steps.</summary>
    public int CheckpointEvery { get; init; } = 500;
    /// <summary><c>--checkpoints_total_limit</c>: the checkpoints kept (oldest deleted first; at least 1); null: all.</summary>
    public int? KeepCheckpoints { get; init; }
    /// <summary>
    /// <c>--resume_from_checkpoint latest</c>: resume from the newest checkpoint-N in <see cref="OutputDir"/> (its
    /// recorded settings must match these options). In a folder without a previous run it starts a new run.
    /// </summary>
    public bool Resume { get; init; }
    /// <summary>
    /// <c>--overwrite_output_dir</c>: delete a previous run's files in <see cref="OutputDir"/> (and only those, see
    /// <see cref="TrainingOutputFolder"/>) before starting; without it (or <see cref="Resume"/>) such a folder is refused.
    /// </summary>
    public bool Overwrite { get; init; }
    /// <summary><c>--save_images_epochs</c>: sample images every this many epochs.</summary>
    public int SaveImagesEveryEpochs { get; init; } = 10;
    /// <summary><c>--save_model_epochs</c>: the pipeline is saved every this many epochs.</summary>
    public int SaveModelEveryEpochs { get; init; } = 10;
    /// <summary><c>--eval_batch_size</c>: images sampled at each save.</summary>
    public int EvalBatchSize { get; init; } = 16;
    /// <summary><c>--ddpm_num_inference_steps</c>: denoising steps of the sample images.</summary>
    public int DdpmNumInferenceSteps { get; init; } = 1000;
    /// <summary>
    /// <c>--mixed_precision</c>: "no" (diffusers' "fp16" and "bf16" are refused: TorchSharp 0.107 has no autocast).
    /// </summary>
    public string MixedPrecision { get; init; } = "no";
    /// <summary>The seed of the data order, augmentations, noise and timesteps.</summary>
    public long Seed { get; init; }
    /// <summary>Save the EMA weights (default) or the raw weights in the pipeline folder.</summary>
    public bool SaveEmaWeights { get; init; } = true;
}
