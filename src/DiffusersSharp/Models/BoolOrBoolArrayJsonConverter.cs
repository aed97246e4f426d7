using System.Text.Json;

namespace DiffusersSharp.Models;

/// <summary>
/// A config value that diffusers allows to be a bool or a list of bools (e.g. <c>only_cross_attention</c>: <c>false</c>
/// or <c>[false, true]</c>), read into a <c>bool[]</c> (see <see cref="ScalarOrArrayJsonConverter{T}"/>).
/// </summary>
internal sealed class BoolOrBoolArrayJsonConverter : ScalarOrArrayJsonConverter<bool>
{
    protected override string Element => "true or false";
    protected override string Expected => "a bool or a list of bools";

    protected override bool TryRead(ref Utf8JsonReader reader, out bool value)
    {
        bool boolean = reader.TokenType is JsonTokenType.True or JsonTokenType.False;
        value = boolean && reader.GetBoolean();
        return boolean;
    }

    protected override void WriteValue(Utf8JsonWriter writer, bool value) => writer.WriteBooleanValue(value);
}
