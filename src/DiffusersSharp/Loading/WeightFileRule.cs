namespace DiffusersSharp.Loading;

/// <summary>
/// How a loader picks its weights file among the files of a folder or of a Hub repository when no weight name is
/// given (<see cref="PretrainedFileLocator"/>): LoRA's best guess (<c>LoraFile.WeightFiles</c>, diffusers'
/// <c>_best_guess_weight_name</c>) or textual inversion's fixed names (<c>TextualInversionEmbedding.WeightFiles</c>).
/// </summary>
/// <param name="What">What the file holds, for messages: <c>LoRA</c>, <c>textual inversion</c>.</param>
/// <param name="Expected">What the rule looks for, for messages.</param>
/// <param name="Preferred">
/// The name the rule takes whenever it is there: a cached copy of it is used without asking the Hub, since no listing
/// of the repository could make the rule choose another file.
/// </param>
/// <param name="Choose">
/// The file chosen among <c>/</c>-separated names relative to the place the second argument describes (for messages);
/// null when none fits; an error naming the candidates when several fit alike.
/// </param>
public sealed record WeightFileRule(string What, string Expected, string Preferred, Func<IReadOnlyList<string>, string, string?> Choose);
