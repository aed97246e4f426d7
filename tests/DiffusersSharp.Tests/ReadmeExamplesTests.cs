using DiffusersSharp.Imaging;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests;

/// <summary>
/// The README's C# examples, run on the tiny golden checkpoints instead of Hub models: they must compile,
/// and the hand-written loop must give exactly the pipeline's image (both are diffusers' DDPM loop).
/// </summary>
public class ReadmeExamplesTests
{
    [Fact]
    public void PipelineAndHandWrittenLoopGiveTheSameImage()
    {
        string model = Golden.Path("tiny-ddpm");
        using var tmp = new TempDir();

        // README: the pipeline
        using var pipe = DDPMPipeline.FromPretrained(model);
        using var result = pipe.Generate(numInferenceSteps: 10, seed: 0);
        result.Images[0].Save(tmp.File("cat.png"));

        // README: the same, taken apart
        using var unet = UNet2DModel.FromPretrained(model, subfolder: "unet");
        using var scheduler = DDPMScheduler.FromPretrained(model);
        scheduler.SetTimesteps(10);
        using var noGrad = torch.no_grad();
        using var g = new torch.Generator(0);
        var x = torch.randn(new long[] { 1, 3, 32, 32 }, generator: g);
        for (int i = 0; i < scheduler.Timesteps.shape[0]; i++)
        {
            using var scope = torch.NewDisposeScope();
            var t = scheduler.Timesteps[i];
            var residual = unet.Forward(x, t).Sample;
            var next = scheduler.Step(residual, t, x, g).PrevSample.MoveToOuterDisposeScope();
            x.Dispose();
            x = next;
        }
        ImageProcessor.Postprocess(x)[0].Save(tmp.File("loop.png"));

        var a = Image.Load(tmp.File("cat.png"));
        var b = Image.Load(tmp.File("loop.png"));
        Assert.Equal(32, a.Width);
        Assert.Equal(a.Width, b.Width);
        Assert.Equal(a.Height, b.Height);
        Assert.Equal(File.ReadAllBytes(tmp.File("cat.png")), File.ReadAllBytes(tmp.File("loop.png")));

        // and both are diffusers' image (golden: tiny-ddpm-expected pipeline/images, NHWC in [0, 1])
        using var expected = Golden.Tensor("tiny-ddpm-expected.safetensors", "pipeline/images");
        using var ours = ImageProcessor.PtToNumpy(ImageProcessor.Denormalize(x));
        Tol.Close(ours, expected, 1e-4, "README loop vs diffusers");
    }

    [Fact]
    public void StableDiffusionExampleRunsWithASwappedScheduler()
    {
        using var sd = StableDiffusionPipeline.FromPretrained(Golden.Path("tiny-sd"));
        using var loaded = sd.Scheduler;
        sd.Scheduler = DPMSolverMultistepScheduler.FromConfig(loaded.Config);
        Assert.IsType<DPMSolverMultistepScheduler>(sd.Scheduler);
        using var image = sd.Generate("a photo of a cat", negativePrompt: "blurry", guidanceScale: 7.5,
                                      numInferenceSteps: 2, seed: 0);
        Assert.Equal(64, image.Images[0].Width);
        Assert.Equal(64, image.Images[0].Height);
    }

    [Fact]
    public void LoadOptionsExampleGivesBfloat16ComponentsFromTheVariantFiles()
    {
        using var folder = Pipelines.PipelineLoadOptionsTests.FolderOf(StableDiffusionPipeline.Name); // weights only as *.fp16.*

        var options = new LoadOptions { Variant = "fp16", Dtype = torch.ScalarType.BFloat16, Device = torch.CPU };
        using var sd16 = DiffusionPipeline.FromPretrained(folder.Path, options);
        using var vae = AutoencoderKL.FromPretrained(folder.Path, "vae", options);

        var sd = Assert.IsType<StableDiffusionPipeline>(sd16);
        // under bf16 the text encoder stays fp32 (StableDiffusionPipelineBase.TextEncoderDtype, as the README says)
        Assert.Equal((ScalarType.BFloat16, ScalarType.BFloat16, ScalarType.Float32, ScalarType.BFloat16),
                     (sd.Unet.DType, sd.Vae.DType, sd.TextEncoder.Dtype, vae.DType));
        using var image = sd.Generate("a photo of a cat", numInferenceSteps: 2, seed: 0);
        Assert.Equal(64, image.Images[0].Width);
    }
}
