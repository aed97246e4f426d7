using DiffusersSharp.Loading;
using DiffusersSharp.Pipelines;

namespace DiffusersSharp.Cli;

/// <summary>What a <see cref="IGenerateRoute"/> runs with: the request, the resolved model and the run's load options.</summary>
/// <param name="Ctx">The CLI's writers and cancellation.</param>
/// <param name="Request">The parsed options.</param>
/// <param name="Folder">The pipeline folder (or the single file) <c>--model</c> resolved to.</param>
/// <param name="ClassName">Its pipeline class (model_index.json's <c>_class_name</c>, or the class a single file is for).</param>
/// <param name="Options">The load options of the run (dtype, variant, revision, cache, log).</param>
/// <param name="OutputType">The output the pipeline gives (always <see cref="OutputType.Np"/>: checked before it is written).</param>
internal sealed record GenerateRun(CliContext Ctx, GenerateCommand.Request Request, string Folder, string ClassName,
    LoadOptions Options, OutputType OutputType);

/// <summary>
/// One path of <c>diffusers generate</c>: the pipeline classes it runs, the requests it takes on them, the options only
/// its classes take, and the run. <see cref="GenerateCommand"/> knows no pipeline: it asks every route of
/// <see cref="GenerateRoutes.All"/>, in order, to refuse its own options on another class, then runs the first route
/// that claims the class and takes the request. A new pipeline is a route in its own file and one entry in that list.
/// </summary>
internal interface IGenerateRoute
{
    /// <summary>Whether <paramref name="className"/> is one of the pipeline classes this route runs.</summary>
    bool Claims(string className);

    /// <summary>
    /// Whether this route runs <paramref name="r"/> on a class it claims (a route that needs its own option, such as
    /// <c>--controlnet</c>, stands before the one for the same classes without it); true by default.
    /// </summary>
    bool Takes(GenerateCommand.Request r) => true;

    /// <summary>
    /// Whether the classes it claims are text-conditioned (they take <c>--prompt</c>): <c>--adapter</c> on any such class
    /// goes to the T2I-Adapter route, which names the classes it runs on.
    /// </summary>
    bool TextConditioned { get; }

    /// <summary>
    /// Whether <c>--image</c> (the x4 upscaler's option, <see cref="StableDiffusionUpscaleOptions"/>) is an input of
    /// <paramref name="className"/> on this route: the upscaler's route refuses it only where no route takes it; false by
    /// default.
    /// </summary>
    bool TakesImageOption(string className) => false;

    /// <summary>Whether a single-file checkpoint (<c>FromSingleFile</c>) of a class it claims runs here; false by default.</summary>
    bool ReadsSingleFiles => false;

    /// <summary>
    /// Refuses, with a message naming the option and <paramref name="className"/>, the options only this route's classes
    /// take when <paramref name="className"/> is not one of them. Every route's check runs, in list order, after the
    /// model is resolved and before any route is chosen; none by default.
    /// </summary>
    void RefuseElsewhere(GenerateCommand.Request r, string className) { }

    /// <summary>Loads the pipeline, generates and returns the output; the caller writes it.</summary>
    ImagePipelineOutput Execute(GenerateRun run);
}

/// <summary>The routes of <c>diffusers generate</c>, in the order they are asked (<see cref="IGenerateRoute"/>).</summary>
internal static class GenerateRoutes
{
    /// <summary>
    /// The routes: the first that claims a class and takes the request runs it, and the refusals run in this order.
    /// The T2I-Adapter route comes first (it takes <c>--adapter</c> on every text-conditioned class), a route with its
    /// own option before the one for the same classes without it, and the unconditional route, which claims every class,
    /// last.
    /// </summary>
    public static readonly IReadOnlyList<IGenerateRoute> All =
    [
        new AdapterOptions.Route(),
        new ControlNetOptions.Route(),
        new StableDiffusionXLGenerate.Route(),
        new StableDiffusionUpscaleOptions.Route(),
        new LatentUpscaleGenerate.Route(),
        new DiTOptions.Route(),
        new InstructPix2PixOptions.Route(),
        new PanoramaOptions.Route(onStableDiffusion: false),
        new PanoramaOptions.Route(onStableDiffusion: true),
        new StableDiffusionOptions.Route(),
        new LatentConsistencyGenerate.Route(),
        new ConsistencyModelGenerate.Route(),
        new LatentDiffusionGenerate.Route(),
        new UnconditionalGenerate.Route(),
    ];

    /// <summary>Runs every route's <see cref="IGenerateRoute.RefuseElsewhere"/>, then returns the route that runs <paramref name="r"/>.</summary>
    public static IGenerateRoute For(GenerateCommand.Request r, string className)
    {
        foreach (var route in All) route.RefuseElsewhere(r, className);
        return All.First(route => route.Claims(className) && route.Takes(r));
    }

    /// <summary>Whether some route takes <c>--image</c> on <paramref name="className"/> (<see cref="IGenerateRoute.TakesImageOption"/>).</summary>
    public static bool TakesImageOption(string className) => All.Any(route => route.Claims(className) && route.TakesImageOption(className));

    /// <summary>Whether some route runs a single-file checkpoint of <paramref name="className"/>.</summary>
    public static bool ReadSingleFile(string className) => All.Any(route => route.ReadsSingleFiles && route.Claims(className));

    /// <summary>Whether <paramref name="className"/> is claimed by a text-conditioned route other than <paramref name="except"/>.</summary>
    public static bool IsTextConditioned(string className, IGenerateRoute except) =>
        All.Any(route => !ReferenceEquals(route, except) && route.TextConditioned && route.Claims(className));
}
