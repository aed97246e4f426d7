using DiffusersSharp.Hub;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Tests.Support;
using DiffusersSharp.Text;
using TorchSharp;

namespace DiffusersSharp.Tests.Hub;

/// <summary>
/// The CLIP tokenizer and text encoder load through <see cref="PretrainedLocator"/> like every other component: a Hub id
/// is downloaded (only its subfolder) through the fake Hub, then read from the cache; errors are the locator's.
/// </summary>
public sealed class TextComponentLoadingTests : IDisposable
{
    private const string SdId = "org/tiny-sd";
    private readonly HubTestEnv _env = new();
    private readonly string _commit;

    public TextComponentLoadingTests() => _env.Server.Add(FakeRepo.FromFolder(SdId, Golden.Path("tiny-sd"), out _commit));

    public void Dispose() => _env.Dispose();

    private string Snapshot => Path.Combine(_env.RepoFolder(SdId), "snapshots", _commit);

    private static void AssertEncodesTheGoldenPrompt(CLIPTextModel model)
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        using var output = model.Forward(Golden.Tensor("tiny-sd-expected.safetensors", "tokenizer/input_ids"));
        Tol.Close(output.LastHiddenState, Golden.Tensor("tiny-sd-expected.safetensors", "text_encoder/last_hidden_state"), Tol.ModelAbs, "last_hidden_state");
    }

    [Fact]
    public void HubIdIsDownloadedSubfolderBySubfolderThenReadFromTheCache()
    {
        var options = new LoadOptions { Hub = _env.Settings() };
        var tok = CLIPTokenizer.FromPretrained(SdId, "tokenizer", options);
        Assert.Equal(Path.Combine(Snapshot, "tokenizer"), tok.Folder);
        Assert.Equal(new[] { 998, 320, 816, 531, 539, 320, 66, 536, 999 }, tok.Encode("a photo of a cat"));
        Assert.False(Directory.Exists(Path.Combine(Snapshot, "text_encoder")));

        using (var model = CLIPTextModel.FromPretrained(SdId, "text_encoder", options))
            AssertEncodesTheGoldenPrompt(model);
        Assert.Equal(["config.json", "model.safetensors"], Directory.GetFiles(Path.Combine(Snapshot, "text_encoder")).Select(Path.GetFileName).Order());

        // cached now: offline, without a request
        int requests = _env.Server.Requests.Count;
        var offline = new LoadOptions { Hub = _env.Settings(offline: true) };
        Assert.Equal(tok.Encode("a cat"), CLIPTokenizer.FromPretrained(SdId, "tokenizer", offline).Encode("a cat"));
        using (var model = CLIPTextModel.FromPretrained(SdId, "text_encoder", offline with { Dtype = torch.ScalarType.Float64 }))
        {
            Assert.Equal(torch.ScalarType.Float64, model.Dtype);
            AssertEncodesTheGoldenPrompt(model);
        }
        Assert.Equal(requests, _env.Server.Requests.Count);
    }

    [Fact]
    public void PipelineHubIdIsDownloadedWholeAndEveryComponentGetsTheOptions()
    {
        var options = new LoadOptions { Hub = _env.Settings(), Dtype = torch.ScalarType.Float64 };
        using var pipe = DiffusionPipeline.FromPretrained(SdId, options);
        var sd = Assert.IsType<StableDiffusionPipeline>(pipe);
        Assert.Equal(Path.Combine(Snapshot, "tokenizer"), sd.Tokenizer.Folder);
        Assert.Equal((torch.ScalarType.Float64, torch.ScalarType.Float64, torch.ScalarType.Float64), (sd.TextEncoder.Dtype, sd.Unet.DType, sd.Vae.DType));
        AssertEncodesTheGoldenPrompt(sd.TextEncoder);
        foreach (var name in new[] { "model_index.json", "scheduler/scheduler_config.json", "text_encoder/model.safetensors", "tokenizer/vocab.json",
                                     "unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors" })
            Assert.True(File.Exists(Path.Combine(Snapshot, name)), name);
    }

    [Fact]
    public void UncachedHubIdWithLocalFilesOnlyNamesTheCacheFolder()
    {
        var options = new LoadOptions { Hub = _env.Settings(), LocalFilesOnly = true };
        var ex = Assert.Throws<DiffusersException>(() => CLIPTokenizer.FromPretrained(SdId, "tokenizer", options));
        string repo = _env.RepoFolder(SdId);
        Assert.Equal($"'{SdId}' is not a local folder and is not in the Hugging Face cache ({repo} does not exist). " +
                     $"Download it first with `diffusers download {SdId} --cache-dir {_env.CacheDir}` (or `huggingface-cli download {SdId} --cache-dir {_env.CacheDir}`), "
                     + "or pass a local folder.", ex.Message);
        Assert.Empty(_env.Server.Requests);
    }

    [Fact]
    public void NeitherFolderNorRepoIdIsNamed()
    {
        var ex = Assert.Throws<DiffusersException>(() => CLIPTextModel.FromPretrained("/no/such/folder"));
        Assert.StartsWith("'/no/such/folder' is neither an existing folder nor a valid Hugging Face Hub id", ex.Message);
    }

    [Fact]
    public void BinWeightsAreUsedWhenThereIsNoSafetensors()
    {
        using var dir = new TempDir();
        string folder = Path.Combine(dir.Path, "text_encoder");
        Directory.CreateDirectory(folder);
        File.Copy(Golden.Path("tiny-sd", "text_encoder", "config.json"), Path.Combine(folder, "config.json"));
        string bin = Path.Combine(folder, "pytorch_model.bin");
        File.WriteAllText(bin, "not a torch zip");
        var ex = Assert.ThrowsAny<DiffusersException>(() => CLIPTextModel.FromPretrained(dir.Path, "text_encoder"));
        Assert.Contains("pytorch_model.bin", ex.Message);

        File.Delete(bin);
        var none = Assert.Throws<WeightsException>(() => CLIPTextModel.FromPretrained(dir.Path, "text_encoder"));
        Assert.Equal($"No weights found in {folder}: looked for model.safetensors, model.safetensors.index.json, pytorch_model.bin, pytorch_model.bin.index.json", none.Message);
    }
}
