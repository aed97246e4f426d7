namespace DiffusersSharp.Cli;

/// <summary>
/// The model <c>diffusers generate</c> uses when no <c>--model</c> is given: the repository's
/// <c>models/ddpm-cats-32</c> (a DDPMPipeline folder trained by <c>diffusers train unconditional</c> on
/// <c>diffusers dataset cats</c>; docs/Training.md), copied next to the program by the build, so it works
/// offline, from <c>dotnet run</c>, a build output or a publish folder alike.
/// </summary>
public static class DefaultModel
{
    /// <summary>The folder name of the bundled default model.</summary>
    public const string Name = "ddpm-cats-32";

    /// <summary>Where the bundled model is: <c>models/ddpm-cats-32</c> next to the program.</summary>
    public static string Path => System.IO.Path.Combine(AppContext.BaseDirectory, "models", Name);
}
