namespace DiffusersSharp.Pipelines;

public abstract partial class StableDiffusionPipelineBase
{
    /// <summary>
    /// The loader mixins of this pipeline's diffusers class (<see cref="LoaderMixins.All"/> unless a pipeline says
    /// otherwise). The members of a missing one (<see cref="LoadTextualInversion(string, string?, string?, string?, Loading.LoadOptions?)"/>,
    /// <see cref="LoadLoraWeights(string, Models.Lora.LoraLoadOptions)"/> and the other LoRA members,
    /// <see cref="LoadIPAdapter"/>, <see cref="SetIPAdapterScale"/>) throw a <see cref="DiffusersException"/> and change nothing.
    /// </summary>
    protected virtual LoaderMixins Loaders => LoaderMixins.All;

    /// <summary>Whether this pipeline takes what <paramref name="mixin"/>'s members load (see <see cref="Loaders"/>).</summary>
    public bool Supports(LoaderMixins mixin) => (Loaders & mixin) == mixin;

    /// <summary>Refuses <paramref name="member"/> when this pipeline's diffusers class lacks <paramref name="mixin"/> (<see cref="LoaderMixinChecks"/>).</summary>
    private void Require(LoaderMixins mixin, string member, string diffusersMethod) =>
        LoaderMixinChecks.Require(ClassName, Loaders, mixin, member, diffusersMethod);
}
