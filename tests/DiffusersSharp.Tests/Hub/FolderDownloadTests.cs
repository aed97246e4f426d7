using DiffusersSharp.Hub;

namespace DiffusersSharp.Tests.Hub;

/// <summary>DownloadFolderAsync: what FromPretrained(id, subfolder:) needs, nothing more.</summary>
public sealed class FolderDownloadTests : IDisposable
{
    private readonly HubTestEnv _env = new();

    public void Dispose() => _env.Dispose();

    private static List<string> FilesUnder(string folder) =>
        Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
                 .Select(f => Path.GetRelativePath(folder, f).Replace('\\', '/')).Order(StringComparer.Ordinal).ToList();

    [Fact]
    public async Task SubfolderDownloadFetchesItsConfigAndOneWeightFormatOnly()
    {
        using var client = _env.Client();
        string unet = await client.DownloadFolderAsync(HubTestEnv.TinyId, "unet");
        string snapshot = Path.Combine(_env.RepoFolder(HubTestEnv.TinyId), "snapshots", _env.TinyCommit);
        Assert.Equal(Path.Combine(snapshot, "unet"), unet);
        Assert.Equal(["unet/config.json", "unet/diffusion_pytorch_model.safetensors"], FilesUnder(snapshot));

        string scheduler = await client.DownloadFolderAsync(HubTestEnv.TinyId, "scheduler");
        Assert.Equal(HubTestEnv.Golden("scheduler/scheduler_config.json"), File.ReadAllBytes(Path.Combine(scheduler, "scheduler_config.json")));

        // the whole pipeline without a subfolder; offline afterwards
        Assert.Equal(snapshot, await client.DownloadFolderAsync(HubTestEnv.TinyId));
        Assert.Equal(4, FilesUnder(snapshot).Count);
        using var offline = _env.Client(offline: true);
        Assert.Equal(Path.Combine(snapshot, "unet"), await offline.DownloadFolderAsync(HubTestEnv.TinyId, "unet"));
        var e = await Assert.ThrowsAsync<HubException>(() => offline.DownloadFolderAsync(HubTestEnv.TinyId, "vae"));
        Assert.Equal(HubErrorKind.LocalEntryNotFound, e.Kind);
        Assert.Equal($"The cached snapshot {snapshot} of {HubTestEnv.TinyId}@main has no folder 'vae', and the Hub cannot be asked (offline or unreachable).", e.Message);

        var e2 = await Assert.ThrowsAsync<HubException>(() => client.DownloadFolderAsync(HubTestEnv.TinyId, "vae"));
        Assert.Equal(HubErrorKind.EntryNotFound, e2.Kind);
        Assert.Equal($"{HubTestEnv.TinyId}@main has no files in 'vae'. Folders: scheduler, unet.", e2.Message);
    }

    [Fact]
    public void FolderSelectionPrefersSafetensorsAndTheVariant()
    {
        string[] files =
        [
            "model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.bin", "unet/diffusion_pytorch_model.safetensors",
            "unet/diffusion_pytorch_model.fp16.safetensors", "unet/diffusion_pytorch_model.fp16.bin", "unet/diffusion_flax_model.msgpack",
            "text_encoder/config.json", "text_encoder/pytorch_model.bin", "tokenizer/vocab.json", "tokenizer/merges.txt",
        ];
        Assert.Equal(["unet/config.json", "unet/diffusion_pytorch_model.safetensors"], PipelineFileSelection.SelectFolder(files, "unet", null));
        Assert.Equal(["unet/config.json", "unet/diffusion_pytorch_model.fp16.safetensors"], PipelineFileSelection.SelectFolder(files, "unet", "fp16"));
        Assert.Equal(["text_encoder/config.json", "text_encoder/pytorch_model.bin"], PipelineFileSelection.SelectFolder(files, "text_encoder/", null));
        Assert.Equal(["tokenizer/merges.txt", "tokenizer/vocab.json"], PipelineFileSelection.SelectFolder(files, "tokenizer", "fp16"));
        Assert.Equal(["model_index.json"], PipelineFileSelection.SelectFolder(files, null, null));
    }
}
