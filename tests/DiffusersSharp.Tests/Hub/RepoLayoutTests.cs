using DiffusersSharp.Hub;

namespace DiffusersSharp.Tests.Hub;

/// <summary><see cref="PipelineFileSelection.LayoutOf"/>: what <c>diffusers download</c> fetches of a repository.</summary>
public sealed class RepoLayoutTests
{
    [Theory]
    [InlineData("model_index.json unet/config.json unet/diffusion_pytorch_model.safetensors", null, RepoLayout.Pipeline)]
    [InlineData("model_index.json README.md", null, RepoLayout.Pipeline)]
    [InlineData("config.json diffusion_pytorch_model.safetensors diffusion_pytorch_model.bin", null, RepoLayout.Model)]
    [InlineData("config.json model.safetensors tokenizer.json tf_model.h5", null, RepoLayout.Model)]     // transformers
    [InlineData("config.json pytorch_model-00001-of-00002.bin pytorch_model-00002-of-00002.bin pytorch_model.bin.index.json", null, RepoLayout.Model)]
    [InlineData("config.json diffusion_pytorch_model.fp16.safetensors", "fp16", RepoLayout.Model)]
    [InlineData("config.json diffusion_pytorch_model.fp16.safetensors", null, RepoLayout.Other)]        // the selection keeps no weight
    [InlineData("config.json README.md", null, RepoLayout.Other)]                                       // a config without weights
    [InlineData(".gitattributes README.md pytorch_lora_weights.safetensors", null, RepoLayout.Other)]  // LCM-LoRA
    [InlineData("learned_embeds.bin token_identifier.txt", null, RepoLayout.Other)]                    // textual inversion
    [InlineData("sd_xl_base_1.0.safetensors v1-5-pruned.ckpt", null, RepoLayout.Other)]                // single files
    [InlineData("unet/config.json unet/diffusion_pytorch_model.safetensors", null, RepoLayout.Other)]   // no top-level config
    [InlineData("", null, RepoLayout.Other)]
    public void LayoutOfARepository(string files, string? variant, RepoLayout expected) =>
        Assert.Equal(expected, PipelineFileSelection.LayoutOf(files.Split(' ', StringSplitOptions.RemoveEmptyEntries), variant));
}
