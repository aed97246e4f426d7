using DiffusersSharp.Tests.Cli;
using DiffusersSharp.Tests.Support;
using static DiffusersSharp.Tests.Fuzz.FuzzCommands;

namespace DiffusersSharp.Tests.Fuzz;

/// <summary>The exact one-line messages of issue 11's inputs (the fuzz suite checks the shape of every message; these pin the words).</summary>
public class IssueMessageTests
{
    private static string Error(FuzzWorkspace w, string[] args)
    {
        var (code, _, stderr) = CliRun.Run(args);
        Assert.Equal(1, code);
        Assert.Single(stderr.TrimEnd().Split('\n'));
        return stderr.TrimEnd();
    }

    [Fact]
    public void InvalidUtf8InASafetensorsTensorName()
    {
        using var w = new FuzzWorkspace("tiny-ddpm");
        string st = w.File("unet/diffusion_pytorch_model.safetensors");
        WeightFiles.ReplaceInHeader(st, "conv_in.weight", [0x63, 0xC3, 0x28]);
        Assert.StartsWith($"error: {st}: corrupt safetensors header: a tensor name or metadata string is not valid UTF-8 (", Error(w, Ddpm(w)));
    }

    [Fact]
    public void ControlCharactersInATensorNameAreEscaped()
    {
        using var w = new FuzzWorkspace("tiny-ddpm");
        string st = w.File("unet/diffusion_pytorch_model.safetensors");
        WeightFiles.ReplaceInHeader(st, "conv_in.weight", "conv_in\\u001b[31m\\n.weight"u8.ToArray());
        Assert.Contains("unexpected keys: conv_in\\u001b[31m\\n.weight [16, 3, 3, 3]", Error(w, Ddpm(w)));
    }

    [Fact]
    public void ConfigFilesThatAreNotObjects()
    {
        using var w = new FuzzWorkspace("tiny-sd");
        w.Write("tokenizer/tokenizer_config.json", "[]");
        Assert.Equal($"error: {w.File("tokenizer/tokenizer_config.json")}: the file must hold a JSON object ({{\"key\": value, …}}), not a list", Error(w, Sd(w)));
        using var w2 = new FuzzWorkspace("tiny-ddpm");
        w2.Write("unet/config.json", "42");
        Assert.Equal($"error: {w2.File("unet/config.json")}: the file must hold a JSON object ({{\"key\": value, …}}), not the number 42", Error(w2, Info(w2)));
    }

    [Theory]
    [InlineData("attention_head_dim", "64", "attention_head_dim 64 is larger than the 32 channels of block 1: its attention would have 0 heads")]
    [InlineData("layers_per_block", "100000", "layers_per_block must be between 1 and 64, got 100000")]
    [InlineData("block_out_channels", "[2147483640, 2147483640]", "block_out_channels[0] must be between 1 and 65536, got 2147483640")]
    [InlineData("downsample_padding", "100", "downsample_padding must be 0 or 1 (other values change the feature map sizes and the skip connections no longer fit), got 100")]
    [InlineData("attn_norm_num_groups", "3", "attn_norm_num_groups must be a positive divisor of the mid block's 32 channels (block_out_channels[-1]), got 3")]
    [InlineData("norm_eps", "NaN", "norm_eps must be a finite number, got NaN")]
    [InlineData("norm_eps", "-1", "norm_eps must be a positive number of at most 1, got -1")]
    [InlineData("mid_block_scale_factor", "0", "mid_block_scale_factor divides the block outputs: it must be a finite number other than 0, got 0")]
    [InlineData("up_block_types", "null", "up_block_types must be a list, not null")]
    [InlineData("layers_per_block", "\"x\"", "has a value of the wrong type or form for UNet2DModelConfig")]
    public void UNet2DModelConfigValues(string key, string value, string message)
    {
        using var w = new FuzzWorkspace("tiny-ddpm");
        w.SetJson("unet/config.json", key, value);
        string e = Error(w, Ddpm(w));
        Assert.StartsWith($"error: {w.File("unet/config.json")}: config key '{key}'", e);
        Assert.Contains(message, e);
    }

    [Fact]
    public void ASampleSizeTheUNetCannotRunIsRefusedByThePipeline()
    {
        // diffusers loads the config (sample_size only sets the pipeline's image size); its UNet2DModel then fails in
        // the up path, which the pipeline says before it starts
        using var w = new FuzzWorkspace("tiny-ddpm");
        w.SetJson("unet/config.json", "sample_size", "31");
        Assert.Equal("error: DDPMPipeline: the UNet config's sample_size 31 is not a multiple of 2 (2^1, for 1 upsampler): like diffusers', UNet2DModel's up path does not resize to the skip connections, so it cannot generate 31×31 images", Error(w, Ddpm(w)));
    }

    [Fact]
    public void WrongTypesAreSaidInWords()
    {
        using var w = new FuzzWorkspace("tiny-ddpm");
        w.SetJson("unet/config.json", "layers_per_block", "1e10");
        string e = Error(w, Ddpm(w));
        Assert.StartsWith($"error: {w.File("unet/config.json")}: config key 'layers_per_block' has a value of the wrong type or form for UNet2DModelConfig (line 1, column ", e);
        Assert.EndsWith("): expected an integer (-2147483648 to 2147483647)", e);
    }

    [Theory]
    [InlineData("beta_end", "NaN", "beta_end must be a number, got NaN")]
    [InlineData("beta_start", "-1", "beta_start must be a number in [0, 1), got -1")]
    [InlineData("num_train_timesteps", "1000000000", "num_train_timesteps must be between 1 and 100000, got 1000000000")]
    public void SchedulerConfigValuesNameTheFile(string key, string value, string message)
    {
        using var w = new FuzzWorkspace("tiny-ddpm");
        w.SetJson("scheduler/scheduler_config.json", key, value);
        Assert.Equal($"error: {w.File("scheduler/scheduler_config.json")}: config key '{key}': {message}", Error(w, Ddpm(w)));
    }

    [Fact]
    public void TrainedBetasOutsideZeroToOne()
    {
        using var w = new FuzzWorkspace("tiny-ddpm");
        w.SetJson("scheduler/scheduler_config.json", "trained_betas", "[" + string.Join(",", Enumerable.Repeat("2.0", 1000)) + "]");
        Assert.Equal($"error: {w.File("scheduler/scheduler_config.json")}: config key 'trained_betas': trained_betas[0] must be a number in [0, 1] (1 - beta is the fraction of the signal kept), got 2",
            Error(w, Ddpm(w)));
    }

    [Fact]
    public void SchedulerOptionsAndConstructorErrorsNameTheirSource()
    {
        using var w = new FuzzWorkspace("tiny-ddpm");
        Assert.Equal("error: --scheduler-config (DDPMScheduler): config key 'beta_end': beta_end must be a number, got NaN",
            Error(w, Ddpm(w, ("--scheduler-config", "beta_end=nan"))));
        w.SetJson("scheduler/scheduler_config.json", "variance_type", "\"wobbly\"");
        Assert.StartsWith($"error: {w.File("scheduler/scheduler_config.json")}: DDPMScheduler: variance_type \"wobbly\" is not supported", Error(w, Ddpm(w)));
    }

    [Fact]
    public void ComponentNamesOutsideTheModelFolderAreRefused()
    {
        using var w = new FuzzWorkspace("tiny-ddpm");
        w.SetJson("model_index.json", "../outside", "[\"diffusers\", \"UNet2DModel\"]");
        Assert.Equal($"error: {w.File("model_index.json")}: component name '../outside' is not a folder name: a component lives in the model folder's subfolder of its name, so it cannot be empty, '.', '..', hold '/', '\\' or control characters",
            Error(w, Info(w)));
    }

    [Fact]
    public void NonFiniteWeightsAreRefusedAtLoadNamingTheTensor()
    {
        using var w = new FuzzWorkspace("tiny-ddpm");
        string st = w.File("unet/diffusion_pytorch_model.safetensors");
        WeightFiles.SetValues(st, "conv_in.weight", float.NaN, all: false);
        Assert.Equal($"error: {st}: weight 'conv_in.weight' of UNet2DModel holds 1 non-finite values of 432 (1 NaN, 0 ±Inf, as Float32): the checkpoint is corrupt, or its values do not fit the dtype",
            Error(w, Ddpm(w)));
    }

    [Fact]
    public void ANonFiniteResultIsNeverWritten()
    {
        using var w = new FuzzWorkspace("tiny-ddpm");
        string st = w.File("unet/diffusion_pytorch_model.safetensors");
        WeightFiles.SetValues(st, "conv_in.weight", 3e38f, all: true); // finite weights that overflow
        string e = Error(w, Ddpm(w));
        // the loop stops at the step that first produced NaN/±Inf, before anything is decoded or written
        Assert.StartsWith($"error: generating with {w.Root}", e);
        Assert.Contains("DDPMPipeline: step 1 of 2 (timestep 500) produced non-finite latents (3072 of 3072 values are NaN or ±Inf)", e);
        Assert.Equal(FuzzWorkspace.Sentinel, File.ReadAllBytes(w.OutputNpy));
    }

    /// <summary>The last line of defence after the loop's per-step check (a VAE can still overflow): nothing non-finite is written.</summary>
    [Fact]
    public void TheOutputWriterRefusesNonFiniteValuesAndLeavesTheFileAsItWas()
    {
        using var dir = new TempDir();
        foreach (bool npy in new[] { true, false })
        {
            string file = dir.File(npy ? "o.npy" : "o.png");
            File.WriteAllBytes(file, [1, 2, 3]);
            var values = Enumerable.Repeat(0.5f, 12).ToArray();
            values[1] = float.NaN;
            values[7] = float.PositiveInfinity;
            using var array = TorchSharp.torch.tensor(values).reshape(1, 2, 2, 3);
            var e = Assert.Throws<DiffusersSharp.Cli.UserException>(() => DiffusersSharp.Cli.OutputWriter.Write(file, array, npy));
            Assert.StartsWith($"the generated images hold 2 non-finite values (NaN or ±Inf) of 12 (16.7%); nothing was written to {file}.", e.Message);
            Assert.Equal([1, 2, 3], File.ReadAllBytes(file));
        }
    }

    [Fact]
    public void TokenizerAndTextEncoderMustFit()
    {
        using var w = new FuzzWorkspace("tiny-sd");
        w.SetJson("tokenizer/tokenizer_config.json", "eos_token", "\"<|not-there|>\"");
        Assert.Equal($"error: {w.File("tokenizer")}: eos_token '<|not-there|>' has id 1000 (it is not in vocab.json, so it was added after it), but {w.File("text_encoder/config.json")} has vocab_size 1000: the text encoder has no embedding for it",
            Error(w, Sd(w)));
        w.SetJson("tokenizer/tokenizer_config.json", "model_max_length", "0");
        Assert.Equal($"error: {w.File("tokenizer/tokenizer_config.json")}: model_max_length must be an integer between 2 and 1000000 (or 1e30, transformers' 'no limit'), got 0",
            Error(w, Sd(w)));
    }

    [Theory]
    [InlineData("--steps", "abc", "error: --steps: 'abc' is not an integer (up to 2147483647) (see 'diffusers generate --help')")]
    [InlineData("--dtype", "fp8", "error: --dtype: 'fp8' is not one of fp32, float32, bf16, bfloat16, fp16, float16, auto")]
    [InlineData("--eta", "1e308", "error: --eta must be between 0 and 1, got 1E+308")]
    public void OptionErrorsAreOneLineInWords(string option, string value, string message)
    {
        using var w = new FuzzWorkspace("tiny-ddpm");
        Assert.Equal(message, Error(w, Ddpm(w, (option, value))));
    }

    [Fact]
    public void ABatchThatCannotFitIsRefusedBeforeLoading()
    {
        using var w = new FuzzWorkspace("tiny-ddpm");
        Assert.StartsWith("error: --batch 2147483647 of 32x32 images need at least ", Error(w, Ddpm(w, ("--batch", "2147483647"))));
    }

    [Fact]
    public void AHugeInitImageIsRefusedBeforeDecoding()
    {
        using var w = new FuzzWorkspace("tiny-sd");
        string big = Path.Combine(w.Root, "big.png");
        File.WriteAllBytes(big, IssueCases.HugePng(30000, 30000));
        Assert.Equal($"error: --init-image: {big}: the image is 30000x30000 pixels; DiffusersSharp reads images of at most 16384 pixels a side",
            Error(w, Sd(w, ("--init-image", big), ("--width", null!), ("--height", null!))));
    }
}
