using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Tests.Hub;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Pipelines;

/// <summary>
/// A pipeline's variant goes only to the components whose folder holds that variant's files (diffusers 0.25.1's
/// <c>model_variants</c>); the others load their plain weights, as diffusers' download selection fetches them.
/// </summary>
public sealed class PipelineVariantTests : IDisposable
{
    private readonly TempDir _temp = new();

    public void Dispose() => _temp.Dispose();

    /// <summary>The tiny SD UNet's weights rounded to float16, as <c>diffusion_pytorch_model.fp16.safetensors</c>.</summary>
    private byte[] Fp16Unet()
    {
        using var half = UNet2DConditionModel.FromPretrained(Golden.Path("tiny-sd"), "unet", new LoadOptions { Dtype = ScalarType.Float16 });
        return File.ReadAllBytes(ModelLoading.SaveWeights(half, _temp.File("fp16-unet"), variant: "fp16"));
    }

    /// <summary>Every parameter and buffer of <paramref name="actual"/> equals <paramref name="expected"/>'s (in float32).</summary>
    private static void AssertSameWeights(nn.Module expected, nn.Module actual, string name)
    {
        var a = actual.state_dict();
        foreach (var (key, value) in expected.state_dict())
            Assert.True(a[key].allclose(value.to(ScalarType.Float32), rtol: 0, atol: 0), $"{name}.{key}");
    }

    private static void AssertLoadsTheFp16UnetAndThePlainRest(StableDiffusionPipeline pipe)
    {
        using (var half = UNet2DConditionModel.FromPretrained(Golden.Path("tiny-sd"), "unet", new LoadOptions { Dtype = ScalarType.Float16 }))
            AssertSameWeights(half, pipe.Unet, "unet");
        using (var vae = AutoencoderKL.FromPretrained(Golden.Path("tiny-sd"), "vae"))
            AssertSameWeights(vae, (nn.Module)pipe.Components["vae"], "vae");
        using (var text = CLIPTextModel.FromPretrained(Golden.Path("tiny-sd"), "text_encoder"))
            AssertSameWeights(text, pipe.TextEncoder, "text_encoder");
    }

    [Fact]
    public void TheVariantGoesOnlyToComponentsWhoseFolderHoldsIt()
    {
        string folder = _temp.File("sd");
        foreach (var f in Directory.GetFiles(Golden.Path("tiny-sd"), "*", SearchOption.AllDirectories))
        {
            string to = Path.Combine(folder, Path.GetRelativePath(Golden.Path("tiny-sd"), f));
            Directory.CreateDirectory(Path.GetDirectoryName(to)!);
            File.Copy(f, to);
        }
        File.WriteAllBytes(Path.Combine(folder, "unet", "diffusion_pytorch_model.fp16.safetensors"), Fp16Unet());

        using (var pipe = StableDiffusionPipeline.FromPretrained(folder, new LoadOptions { Variant = "fp16" }))
            AssertLoadsTheFp16UnetAndThePlainRest(pipe);

        // a model loaded on its own keeps the variant it is given (diffusers' ModelMixin: no file of that name)
        var alone = Assert.Throws<WeightsException>(() => AutoencoderKL.FromPretrained(folder, "vae", new LoadOptions { Variant = "fp16" }));
        Assert.Equal($"No weights found in {Path.Combine(folder, "vae")}: looked for diffusion_pytorch_model.fp16.safetensors, "
                     + "diffusion_pytorch_model.safetensors.index.fp16.json, diffusion_pytorch_model.fp16.bin, diffusion_pytorch_model.bin.index.fp16.json "
                     + "(there is diffusion_pytorch_model.safetensors, without the 'fp16' variant: load it with variant null)", alone.Message);

        // a variant no component holds is refused, not silently replaced by the plain weights
        var none = Assert.Throws<WeightsException>(() => StableDiffusionPipeline.FromPretrained(Golden.Path("tiny-sd"), new LoadOptions { Variant = "ema" }));
        Assert.Equal($"{Golden.Path("tiny-sd")}: no component of the pipeline has 'ema' weights (no file like diffusion_pytorch_model.ema.safetensors "
                     + "in scheduler, text_encoder, tokenizer, unet, vae); load it without the variant (variant null)", none.Message);
        Assert.Equal(Golden.Path("tiny-sd"), none.FilePath);
    }

    [Fact]
    public void TheFilesDownloadedForAVariantLoad()
    {
        using var env = new HubTestEnv();
        var files = FakeRepo.FromFolder("org/sd-fp16-unet", Golden.Path("tiny-sd"), out _).Commits.Values.Single();
        files["unet/diffusion_pytorch_model.fp16.safetensors"] = Fp16Unet();
        var repo = new FakeRepo("org/sd-fp16-unet");
        string commit = repo.AddCommit(files);
        env.Server.Add(repo);

        using var pipe = StableDiffusionPipeline.FromPretrained("org/sd-fp16-unet", new LoadOptions { Hub = env.Settings(), Variant = "fp16" });
        // diffusers' selection: the fp16 UNet, the plain weights of the components without fp16 files
        string snapshot = Path.Combine(env.RepoFolder("org/sd-fp16-unet"), "snapshots", commit);
        Assert.Equal(["config.json", "diffusion_pytorch_model.fp16.safetensors"], Directory.GetFiles(Path.Combine(snapshot, "unet")).Select(Path.GetFileName).Order());
        Assert.Equal(["config.json", "diffusion_pytorch_model.safetensors"], Directory.GetFiles(Path.Combine(snapshot, "vae")).Select(Path.GetFileName).Order());
        AssertLoadsTheFp16UnetAndThePlainRest(pipe);
    }
}
