"""Serializers of the JSON contract (field lists from benchcontract). Used by the DRF views and, as
plain CPU work on already-fetched objects, by the async views."""
import benchcontract
from rest_framework import serializers

from circus.models import Acrobat, Clown, ClownCollege, Location, Troupe


class LocationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Location
        fields = benchcontract.LOCATION_FIELDS


class TroupeRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Troupe
        fields = benchcontract.TROUPE_REF_FIELDS


class ClownCollegeSerializer(serializers.ModelSerializer):
    location = LocationSerializer(read_only=True)
    troupe = TroupeRefSerializer(read_only=True)

    class Meta:
        model = ClownCollege
        fields = benchcontract.CLOWNCOLLEGE_FIELDS


class ClownSerializer(serializers.ModelSerializer):
    # `id` is the auth_user id: multi-table inheritance keeps it equal to the performer's pk.
    class Meta:
        model = Clown
        fields = benchcontract.PERFORMER_FIELDS


class AcrobatSerializer(serializers.ModelSerializer):
    class Meta:
        model = Acrobat
        fields = benchcontract.PERFORMER_FIELDS


class TroupeSerializer(serializers.ModelSerializer):
    clowns = ClownSerializer(many=True, read_only=True)
    acrobats = AcrobatSerializer(many=True, read_only=True)

    class Meta:
        model = Troupe
        fields = benchcontract.TROUPE_FIELDS
