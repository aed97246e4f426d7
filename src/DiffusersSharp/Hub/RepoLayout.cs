namespace DiffusersSharp.Hub;

/// <summary>What a repository holds at its top, which decides what <see cref="HubClient.DownloadRepositoryAsync"/> fetches.</summary>
public enum RepoLayout
{
    /// <summary>A diffusers pipeline: <c>model_index.json</c> at the top (diffusers' pipeline file selection).</summary>
    Pipeline,

    /// <summary>
    /// One model folder: a top-level <c>config.json</c> next to weights diffusers or transformers load
    /// (<c>diffusion_pytorch_model.*</c>, <c>model.safetensors</c>, <c>pytorch_model.bin</c>, their variants and shards),
    /// fetched as <see cref="PipelineFileSelection.SelectFolder"/> chooses (the configs and one weight format).
    /// </summary>
    Model,

    /// <summary>
    /// Anything else (a LoRA, a textual-inversion embedding, single-file checkpoints, a model folder whose only weights
    /// are of another variant): every file of the revision, as <c>snapshot_download</c> and <c>huggingface-cli download</c> fetch.
    /// </summary>
    Other,
}
