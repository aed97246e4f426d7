using DiffusersSharp.Imaging;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Pipelines;

/// <summary>SDXL behaviour the golden runs do not cover: the step-end callback's tensors, force_upcast, the 9-channel inpaint UNet.</summary>
public class StableDiffusionXLBehaviourTests
{
    [Fact]
    public void TheStepEndCallbackSeesTheAddedConditioningAndItsReplacementIsUsed()
    {
        using var pipe = StableDiffusionXLPipeline.FromPretrained(StableDiffusionXLPipelineTests.Base);
        var seen = new List<string>();
        using var plain = pipe.Generate("a photo of a cat", numInferenceSteps: 2, height: 32, width: 32, outputType: OutputType.Latent, seed: 0,
            callbackOnStepEnd: (step, t, tensors) => { if (step == 0) seen.AddRange(tensors.Keys.Order(StringComparer.Ordinal)); });
        Assert.Equal(new[] { "add_text_embeds", "add_time_ids", "latents", "negative_add_time_ids", "negative_pooled_prompt_embeds",
            "negative_prompt_embeds", "prompt_embeds" }, seen);
        using var same = pipe.Generate("a photo of a cat", numInferenceSteps: 2, height: 32, width: 32, outputType: OutputType.Latent, seed: 0);
        Assert.Equal(0.0, Tol.MaxAbsDiff(same.Tensor!, plain.Tensor!));
        using var changed = pipe.Generate("a photo of a cat", numInferenceSteps: 2, height: 32, width: 32, outputType: OutputType.Latent, seed: 0,
            callbackOnStepEnd: (step, t, tensors) =>
            {
                if (step == 0) tensors["add_time_ids"] = tensors["add_time_ids"] * 2;
            });
        Assert.True(Tol.MaxAbsDiff(changed.Tensor!, plain.Tensor!) > 1e-4, "the replaced add_time_ids were not used by the next step");
    }

    [Theory]
    [InlineData(ScalarType.Float16, true, ScalarType.Float32)]
    [InlineData(ScalarType.Float16, false, ScalarType.Float16)]
    [InlineData(ScalarType.BFloat16, true, ScalarType.BFloat16)]   // diffusers' needs_upcasting: fp16 only
    public void ForceUpcastDecodesAnFp16VaeInFloat32AndPutsItBack(ScalarType dtype, bool forceUpcast, ScalarType decodeDtype)
    {
        using var pipe = StableDiffusionXLPipeline.FromPretrained(StableDiffusionXLPipelineTests.Base, new LoadOptions { Dtype = dtype });
        var kl = Assert.IsType<AutoencoderKL>(pipe.Vae);
        Assert.True(kl.ForceUpcast);
        if (!forceUpcast)
        {
            using var dir = new TempDir();
            kl.SavePretrained(dir.Path);
            string config = dir.File("config.json");
            File.WriteAllText(config, File.ReadAllText(config).Replace("\"force_upcast\": true", "\"force_upcast\": false"));
            var old = pipe.Vae;
            pipe.Vae = AutoencoderKL.FromPretrained(dir.Path, options: new LoadOptions { Dtype = dtype });
            old.Dispose();
        }
        ScalarType? decoded = null;
        pipe.Trace = (name, _, t) => { if (name == "vae_decoded") decoded = t.dtype; };
        using var result = pipe.Generate("a cat", numInferenceSteps: 1, height: 32, width: 32, outputType: OutputType.Np, seed: 0);
        Assert.Equal(decodeDtype, decoded);
        Assert.Equal(dtype, pipe.Vae.DType);
        Assert.Equal(new long[] { 1, 32, 32, 3 }, result.Array!.shape);
    }

    [Fact]
    public void AnFp16ForceUpcastDecodeKeepsUpcastVaesThreeStagesInFp16()
    {
        // diffusers 0.25.1's upcast_vae under torch 2: the VAE to float32, then post_quant_conv, decoder.conv_in and
        // decoder.mid_block back to fp16; the latents cast to post_quant_conv's dtype, then divided by scaling_factor
        using var pipe = StableDiffusionXLPipeline.FromPretrained(StableDiffusionXLPipelineTests.Base, new LoadOptions { Dtype = ScalarType.Float16 });
        var kl = Assert.IsType<AutoencoderKL>(pipe.Vae);
        var stages = new Dictionary<string, ScalarType>();
        kl.IntermediateHook = (name, t) => stages[name] = t.dtype;
        Tensor? latents = null, decoded = null;
        pipe.Trace = (name, _, t) =>
        {
            if (name == "latents_after_step") latents = t.detach().clone().DetachFromDisposeScope();
            if (name == "vae_decoded") decoded = t.detach().clone().DetachFromDisposeScope();
        };
        using (var result = pipe.Generate("a cat", numInferenceSteps: 1, height: 32, width: 32, outputType: OutputType.Np, seed: 0))
            Assert.Equal(new long[] { 1, 32, 32, 3 }, result.Array!.shape);
        kl.IntermediateHook = null;
        Assert.Equal(ScalarType.Float16, stages["post_quant_conv"]);
        Assert.Equal(ScalarType.Float16, stages["decoder.conv_in"]);
        Assert.Equal(ScalarType.Float16, stages["decoder.mid_block"]);
        Assert.Equal(ScalarType.Float32, stages["decoder.up_blocks.0"]);
        Assert.Equal(ScalarType.Float32, stages["decoder.conv_out"]);
        Assert.Equal(ScalarType.Float16, kl.DType);
        Assert.All(kl.parameters(), p => Assert.Equal(ScalarType.Float16, p.dtype));   // put back whole

        // the same steps written out on a second copy of the VAE
        using var vae = AutoencoderKL.FromPretrained(StableDiffusionXLPipelineTests.Base, "vae", new LoadOptions { Dtype = ScalarType.Float16 });
        vae.to(ScalarType.Float32);
        foreach (var (name, module) in vae.named_modules())
            if (name is "post_quant_conv" or "decoder.conv_in" or "decoder.mid_block") module.to(ScalarType.Float16);
        Assert.Equal(ScalarType.Float16, latents!.dtype);
        using var noGrad = torch.no_grad();   // as the pipeline runs (our fused kernels apply only then)
        using var expected = vae.Decode(latents.to(ScalarType.Float16) / vae.ScalingFactor).Sample;
        Assert.Equal(ScalarType.Float32, decoded!.dtype);
        Assert.Equal(0.0, Tol.MaxAbsDiff(decoded, expected));
        latents.Dispose();
        decoded.Dispose();
    }

    [Fact]
    public void ANineChannelInpaintUNetSeesTheMaskAndTheMaskedImageLatents()
    {
        using var dir = new TempDir();
        foreach (var f in Directory.GetFiles(StableDiffusionXLPipelineTests.Base, "*", SearchOption.AllDirectories))
        {
            string to = Path.Combine(dir.Path, Path.GetRelativePath(StableDiffusionXLPipelineTests.Base, f));
            Directory.CreateDirectory(Path.GetDirectoryName(to)!);
            File.Copy(f, to);
        }
        var config = ConfigJson.Read<UNet2DConditionModelConfig>(dir.File(Path.Combine("unet", "config.json"))) with { InChannels = 9 };
        Directory.Delete(dir.File("unet"), recursive: true);
        torch.manual_seed(0);
        using (var unet9 = UNet2DConditionModel.FromConfig(config)) unet9.SavePretrained(dir.File("unet"));

        using var pipe = StableDiffusionXLInpaintPipeline.FromPretrained(dir.Path);
        Assert.Equal(9, pipe.Unet.Config.InChannels);
        var inputs = new List<Tensor>();
        Tensor? maskedLatentsMean = null;
        pipe.Trace = (name, _, t) =>
        {
            if (name == "unet_input") inputs.Add(t.detach().clone().DetachFromDisposeScope());
            if (name == "vae_encode_1_mean") maskedLatentsMean = t.detach().clone().DetachFromDisposeScope();
        };
        var init = Image.Load(Golden.Path("img2img-init.png"));
        var mask = Image.Load(Golden.Path("inpaint-mask.png"));
        using var result = pipe.Generate("a red ball", init, mask, numInferenceSteps: 2, strength: 1.0, outputType: OutputType.Np, seed: 7);
        Assert.Equal(2, inputs.Count);
        Assert.Equal(new long[] { 2, 9, 32, 32 }, inputs[0].shape);
        using var maskChannel = inputs[0].narrow(1, 4, 1);
        using var isBinary = (maskChannel.eq(0) | maskChannel.eq(1)).all();
        Assert.True(isBinary.item<bool>(), "channel 4 is the binarised mask");
        Assert.NotNull(maskedLatentsMean);   // the masked image was encoded for channels 5-8 (a posterior sample of it)
        using var both = inputs[0].narrow(1, 5, 4);
        Assert.Equal(0.0, Tol.MaxAbsDiff(both[0], both[1]));   // the same masked image latents for both halves of the guidance batch
        foreach (var t in inputs) t.Dispose();
        maskedLatentsMean?.Dispose();
    }
}
